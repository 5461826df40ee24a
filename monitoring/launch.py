"""Start Prometheus (and Grafana where installed) against a running Ray cluster.

    python -m monitoring.launch                       # on the head node, after `ray start --head`
    python -m monitoring.launch --address auto --listen 0.0.0.0
    python -m monitoring.launch --targets 127.0.0.1:8080     # multi_client.py --metrics-port 8080

Targets: Ray's service-discovery file (`/tmp/ray/prom_metrics_service_discovery.json`,
kept current by Ray's dashboard as nodes come and go) when it exists; otherwise the
metrics port of every node alive now, asked from Ray (`--address`). Prometheus listens on
127.0.0.1 unless `--listen` says otherwise, and keeps its data under `--data-dir`.
Grafana, when `grafana-server` (or `grafana`) is on PATH, starts with the provisioning in
`monitoring/grafana/`: the Prometheus datasource and the ams-ray dashboard. Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

MONITORING = Path(__file__).resolve().parent
PROMETHEUS_TEMPLATE = MONITORING / "prometheus.yml"
RAY_SD_FILE = Path("/tmp/ray/prom_metrics_service_discovery.json")


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def render_prometheus_config(scrape_interval: str, sd_file: Path | None = None,
                             targets: list[str] | None = None) -> str:
    """monitoring/prometheus.yml with either Ray's discovery file or static targets."""
    config = yaml.safe_load(PROMETHEUS_TEMPLATE.read_text())
    config["global"]["scrape_interval"] = scrape_interval
    job = config["scrape_configs"][0]
    if targets:
        del job["file_sd_configs"]
        job["static_configs"] = [{"targets": list(targets)}]
    elif sd_file is not None:
        job["file_sd_configs"] = [{"files": [str(sd_file)]}]
    return yaml.safe_dump(config, sort_keys=False)


def ray_metrics_targets(address: str) -> list[str]:
    """host:port of every alive node's metrics exporter."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    return [f"{n['NodeManagerAddress']}:{n['MetricsExportPort']}" for n in ray.nodes() if n.get("Alive")]


def _wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float = 30.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with code {process.returncode}; see {log_path}:\n"
                               + log_path.read_text()[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} not ready within {timeout_s:g} s; see {log_path}")


def start_prometheus(data_dir: Path, port: int = 9090, listen: str = "127.0.0.1", scrape_interval: str = "5s",
                     sd_file: Path | None = None, targets: list[str] | None = None) -> Service:
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus is not installed: `apt-get install prometheus` (Debian/Ubuntu) or "
                                "download it from prometheus.io and put it on PATH")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "prometheus.yml"
    config.write_text(render_prometheus_config(scrape_interval, sd_file, targets))
    log_path = data_dir / "prometheus.log"
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={data_dir / 'tsdb'}",
         f"--web.listen-address={listen}:{port}"],
        stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}" if listen in ("127.0.0.1", "0.0.0.0") else f"http://{listen}:{port}"
    _wait_ready(f"{url}/-/ready", process, log_path)
    return Service("prometheus", url, process, log_path)


def start_grafana(data_dir: Path, prometheus_url: str, port: int = 3000, listen: str = "127.0.0.1") -> Service | None:
    """Grafana with ams-ray's provisioning, or None when Grafana is not installed."""
    binary = shutil.which("grafana-server") or shutil.which("grafana")
    if binary is None:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GF_PATHS_PROVISIONING": str(MONITORING / "grafana" / "provisioning"),
           "GF_PATHS_DATA": str(data_dir / "grafana"), "GF_SERVER_HTTP_ADDR": listen,
           "GF_SERVER_HTTP_PORT": str(port), "PROMETHEUS_URL": prometheus_url,
           "AMS_RAY_DASHBOARDS": str(MONITORING / "grafana" / "dashboards")}
    command = [binary, "server"] if Path(binary).name == "grafana" else [binary]
    homepath = next((p for p in ("/usr/share/grafana", "/usr/local/share/grafana") if Path(p).is_dir()), None)
    if homepath:
        command.append(f"--homepath={homepath}")
    log_path = data_dir / "grafana.log"
    process = subprocess.Popen(command, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(f"{url}/api/health", process, log_path, timeout_s=60)
    return Service("grafana", url, process, log_path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default="auto", help="Ray cluster to ask for targets when no discovery file exists")
    p.add_argument("--sd-file", type=Path, default=RAY_SD_FILE, help="Ray's Prometheus service-discovery file")
    p.add_argument("--targets", nargs="+", help="scrape these HOST:PORT instead (e.g. multi_client.py --metrics-port)")
    p.add_argument("--prometheus-port", type=int, default=9090)
    p.add_argument("--grafana-port", type=int, default=3000)
    p.add_argument("--listen", default="127.0.0.1", help="address Prometheus and Grafana listen on")
    p.add_argument("--scrape-interval", default="5s")
    p.add_argument("--data-dir", type=Path, default=Path("runs/monitoring"))
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` stops Prometheus and Grafana too
    if args.targets:
        sd_file, targets = None, args.targets
        print(f"targets: {', '.join(targets)}")
    elif args.sd_file.exists():
        sd_file, targets = args.sd_file, None
        print(f"targets: Ray's discovery file {sd_file}")
    else:
        sd_file, targets = None, ray_metrics_targets(args.address)
        print(f"targets ({args.sd_file} not found; asked Ray at {args.address}): {', '.join(targets)}")
    services = [start_prometheus(args.data_dir, args.prometheus_port, args.listen, args.scrape_interval,
                                 sd_file, targets)]
    print(f"Prometheus: {services[0].url}  (log {services[0].log_path})")
    grafana = start_grafana(args.data_dir, services[0].url, args.grafana_port, args.listen)
    if grafana:
        services.append(grafana)
        print(f"Grafana: {grafana.url}/d/ams-ray-fleet  (folder ams-ray; log {grafana.log_path})")
    else:
        print("Grafana is not installed here: import monitoring/grafana/dashboards/ams-ray.json into yours "
              f"(datasource uid ams-prometheus -> {services[0].url})")
    try:
        while all(s.process.poll() is None for s in services):
            time.sleep(1)
        dead = next(s for s in services if s.process.poll() is not None)
        print(f"{dead.name} exited; see {dead.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for service in services:
            service.stop()


if __name__ == "__main__":
    sys.exit(main())
