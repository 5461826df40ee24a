"""The long-running service: teacher, trainer hosts and the device ingress as one Serve app.

    python -m serve.app --state-dir ~/.ams-ray/service          # loopback, port 8000
    serve run serve/service.yaml                                 # the same, by Serve's convention

`python -m serve.app` starts Ray on this machine (or joins `--address`), deploys the app,
waits for its health check, prints the URL, and runs until Ctrl-C or SIGTERM (what systemd,
Kubernetes and `timeout` send). Then it drains: no new streams, every host finishes its
running rounds, lets its devices acknowledge their packets and lands its writes, waiting
long-polls are answered; then it stops what it started and exits 0. Devices are added with
`python -m serve.devices`.

Sizes are `N` or `MIN..MAX` (Serve autoscaling for replicas, the stream directory's pool for
trainer hosts); see `ams_ray.service.settings.ServiceSettings` for every setting.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import urllib.request

from ams_ray.service.round_policy import SCHEDULERS
from ams_ray.service.settings import ServiceSettings, check_state_reachable, expand_local

APP_NAME = "ams-service"
READY_TIMEOUT_S = 600.0
DRAIN_TIMEOUT_S = 120.0
# Each device keeps about one request open (its long-poll); a replica holds up to 1024.
INGRESS_TARGET_ONGOING = 256


def build_app(args: dict):
    """Serve's application builder (`import_path: serve.app:build_app`): settings -> bound app.
    The student's weights are read here, on the driver, and travel as bytes."""
    from ams_ray.models.student_spec import StudentSpec
    from serve.ingress import DeviceIngress
    from serve.teacher import teacher_app

    settings = ServiceSettings(**{**args, "state_url": expand_local(args.get("state_url") or
                                                                     ServiceSettings().state_url)})
    teachers = settings.teacher_replicas
    teacher = teacher_app(settings.teacher, replicas=teachers.low, max_replicas=None if teachers.fixed else teachers.high,
                          max_batch_size=settings.teacher_batch, num_cpus=settings.teacher_cpus,
                          num_gpus=settings.teacher_gpus)
    ingress = settings.ingress_replicas
    scaling = ({"num_replicas": ingress.low} if ingress.fixed else
               {"autoscaling_config": {"min_replicas": ingress.low, "max_replicas": ingress.high,
                                       "target_ongoing_requests": INGRESS_TARGET_ONGOING}})
    return DeviceIngress.options(**scaling).bind(teacher, settings, StudentSpec.read(settings.student))


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
    p.add_argument("--hosts", default=defaults.hosts, help="trainer hosts, N or MIN..MAX (default %(default)s)")
    p.add_argument("--streams-per-host", type=int, default=defaults.streams_per_host,
                   help="open streams per host above which a MIN..MAX pool grows (default %(default)s)")
    p.add_argument("--ingress-replicas", default=defaults.ingress_replicas, help="N or MIN..MAX (default %(default)s)")
    p.add_argument("--teacher-replicas", default=defaults.teacher_replicas, help="N or MIN..MAX (default %(default)s)")
    p.add_argument("--teacher-gpus", type=float, default=defaults.teacher_gpus, help="GPUs per teacher replica")
    p.add_argument("--trainer-gpus", type=float, default=defaults.trainer_gpus, help="GPUs per trainer host")
    p.add_argument("--shared-state", action="store_true",
                   help="the local --state-dir is mounted on every node (otherwise refused on a multi-node cluster)")
    p.add_argument("--scheduler", default=defaults.scheduler, choices=SCHEDULERS,
                   help="which due round trains first when the hosts cannot train them all (default %(default)s; "
                        "gain: the round that buys the most mIoU per second, with a fairness floor)")
    p.add_argument("--idle-retire-s", type=float, default=defaults.idle_retire_s)
    p.add_argument("--requests-per-s", type=float, default=defaults.requests_per_s)
    p.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    return p.parse_args(argv)


def start(app, settings: dict, address: str | None) -> str:
    """Ray (joined or started), then the app on Serve's HTTP proxy; returns the service URL."""
    join_cluster(settings, address)
    return deploy(app, settings)


def join_cluster(settings: dict, address: str | None) -> None:
    """Start or join Ray; a local state directory on a cluster of several nodes is refused
    here (ValueError), before anything is deployed."""
    import ray

    from actors.cluster import connect

    connect(address)
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    check_state_reachable(expand_local(settings["state_url"]), nodes, settings["shared_state"])


def deploy(app, settings: dict) -> str:
    from ray import serve

    serve.start(http_options={"host": settings["host"], "port": settings["port"]}, proxy_location="EveryNode")
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{settings['host']}:{settings['port']}"


def wait_healthy(url: str, stopping: threading.Event, timeout_s: float = READY_TIMEOUT_S) -> bool:
    """Until /healthz answers 200 (True), or a stop was asked for first (False); a loaded
    machine takes a while to start torch processes."""
    deadline = time.monotonic() + timeout_s
    while not stopping.is_set():
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the service at {url} was not healthy within {timeout_s:g} s")
        stopping.wait(1.0)
    return False


def drain() -> int:
    """Let every stream go cleanly (see the module's docstring); returns the streams released."""
    import ray

    directory = _directory()
    if directory is None:
        return 0  # no device ever came: nothing to drain
    return ray.get(directory.drain.remote(), timeout=DRAIN_TIMEOUT_S)


def _directory():
    """The service's stream directory, or None: the first device call starts it."""
    import ray

    from actors.stream_directory import DIRECTORY_NAME, NAMESPACE

    try:
        return ray.get_actor(DIRECTORY_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def stop() -> None:
    """The app (not Serve: on a shared cluster other apps may run there), then the directory's
    hosts and the directory (detached: nothing else stops them), then Ray (a cluster started
    here stops with it)."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    try:
        if APP_NAME in serve.status().applications:
            serve.delete(APP_NAME)
        directory = _directory()
        if directory is not None:
            ray.get(directory.shutdown.remote(), timeout=60)
            ray.kill(directory, no_restart=True)
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
    _on_stop_signals(stopping.set)
    _own_process_group()
    try:
        join_cluster(settings, args.address)
    except ValueError as exc:  # a state directory other nodes cannot reach
        print(f"error: {exc}", file=sys.stderr)
        stop()
        return 2
    _on_stop_signals(stopping.set)  # again: starting Ray installs its own SIGTERM handler, which aborts
    try:
        url = deploy(app, settings)
        if wait_healthy(url, stopping):
            print(f"ams-ray service ready at {url} (API docs at {url}/docs); state in {expand_local(args.state_url)}; "
                  "Ctrl-C or SIGTERM stops it", flush=True)
        stopping.wait()
        print("draining: no new streams; rounds finish, packets go down, writes land", file=sys.stderr, flush=True)
        print(f"drained {drain()} streams", file=sys.stderr, flush=True)
    finally:
        print("stopping the service", file=sys.stderr, flush=True)
        stop()
    return 0


def _own_process_group() -> None:
    """Lead a process group of our own, which the Ray processes started here join. `timeout`
    and process supervisors send SIGTERM to the group they started the service in; Ray's
    processes there would die on it at once, leaving nothing to drain. (A shell with job
    control already makes the service a group leader, and Ctrl-C keeps working.)"""
    if os.getpgrp() != os.getpid():
        try:
            os.setpgrp()
        except OSError:
            pass


def _on_stop_signals(handler) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: handler())


if __name__ == "__main__":
    sys.exit(main())
