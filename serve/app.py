"""The long-running service: teacher, trainer hosts and the device ingress as one Serve app.

    python -m serve.app --state-dir ~/.ams-ray/service          # loopback, port 8000
    serve run serve/service.yaml                                 # the same, by Serve's convention

`python -m serve.app` starts Ray on this machine (or joins `--address`), deploys the app,
waits for its health check, prints the URL, and runs until Ctrl-C or SIGTERM, when it
stops what it started. Devices are added with `python -m serve.devices`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import urllib.request

from ams_ray.service.settings import ServiceSettings, expand_local

APP_NAME = "ams-service"
READY_TIMEOUT_S = 600.0


def build_app(args: dict):
    """Serve's application builder (`import_path: serve.app:build_app`): settings -> bound app.
    The student's weights are read here, on the driver, and travel as bytes."""
    from ams_ray.models.student_spec import StudentSpec
    from serve.ingress import DeviceIngress
    from serve.teacher import teacher_app

    settings = ServiceSettings(**{**args, "state_url": expand_local(args.get("state_url") or
                                                                     ServiceSettings().state_url)})
    teacher = teacher_app(settings.teacher, max_batch_size=settings.teacher_batch, num_cpus=settings.teacher_cpus)
    return DeviceIngress.bind(teacher, settings, StudentSpec.read(settings.student))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ServiceSettings()
    p = argparse.ArgumentParser(prog="python -m serve.app", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", dest="state_url", default=defaults.state_url,
                   help="directory or fsspec URL of the device registry and stream checkpoints (default: %(default)s)")
    p.add_argument("--host", default=defaults.host, help="listen address (default %(default)s; 0.0.0.0 to expose)")
    p.add_argument("--port", type=int, default=defaults.port)
    p.add_argument("--address", default=None, help="join this Ray cluster (e.g. auto) instead of starting one")
    p.add_argument("--teacher", default=defaults.teacher)
    p.add_argument("--student", default=defaults.student)
    p.add_argument("--trainers", type=int, default=defaults.trainers)
    p.add_argument("--idle-retire-s", type=float, default=defaults.idle_retire_s)
    p.add_argument("--requests-per-s", type=float, default=defaults.requests_per_s)
    p.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    return p.parse_args(argv)


def start(app, settings: dict, address: str | None) -> str:
    """Ray, Serve's HTTP proxy on the chosen address, the app; returns the service URL."""
    from ray import serve

    from actors.cluster import connect

    connect(address)
    serve.start(http_options={"host": settings["host"], "port": settings["port"]})
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{settings['host']}:{settings['port']}"


def wait_healthy(url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until /healthz answers 200; a loaded machine takes a while to start torch processes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the service at {url} was not healthy within {timeout_s:g} s")
        time.sleep(1.0)


def stop() -> None:
    import ray
    from ray import serve

    if ray.is_initialized():
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = {k: v for k, v in vars(args).items() if k != "address"}
    if args.address is None:
        from actors.loopback import use_loopback_only

        use_loopback_only()  # before Ray is imported: a cluster started here stays on 127.0.0.1
    try:
        app = build_app(settings)
    except (ValueError, OSError) as exc:  # bad settings, a missing weights file: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        url = start(app, settings, args.address)
        wait_healthy(url)
        print(f"ams-ray service ready at {url} (API docs at {url}/docs); state in {expand_local(args.state_url)}; "
              "Ctrl-C stops it", flush=True)
        stopping.wait()
    finally:
        print("stopping the service", file=sys.stderr, flush=True)
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
