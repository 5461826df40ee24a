"""Starting or joining Ray on loopback, and checking placement before creating actors."""

from __future__ import annotations

import logging
import os

import ray

from ams_ray.fleet.placement import Demand, check_fits


def connect(address: str | None, num_cpus: int | None = None, num_gpus: int | None = None,
            metrics_export_port: int | None = None) -> None:
    """Join `address` ("auto" or HOST:PORT), or start a single loopback-only node.

    A node started here turns token authentication off explicitly (`RAY_AUTH_MODE=disabled`,
    unless set), instead of Ray warning about it on every run: every port listens on 127.0.0.1.
    Ray's and Serve's own INFO lines ("Started a local Ray instance", "Application ... is ready")
    stay off the console, which carries the caller's progress and results."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    from ray._private import ray_constants

    if not address and ray_constants.ENABLE_RAY_CLUSTER:
        raise RuntimeError(
            "ray was imported before actors.loopback.use_loopback_only(): a new cluster would bind this machine's "
            "network address; call use_loopback_only() first (or set "
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) before importing ray"
        )
    # MALLOC_ARENA_MAX: glibc gives every thread its own malloc arena, and torch's CPU
    # threads fragment them; capping arenas keeps each trainer's resident memory flat.
    # RAY_SERVE_*: Serve settings set here (e.g. by multi_client.py) reach the routers of the
    # workers that call the teacher, not only the driver's.
    runtime_env = {"env_vars": {"RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
                                **{k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE_")}}}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs: dict = {"_metrics_export_port": metrics_export_port} if metrics_export_port else {}
    # address="local": always a new cluster. Without it ray.init joins whatever cluster
    # /tmp/ray/ray_current_cluster names (the last `ray start --head` here), even a dead one.
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, _node_ip_address="127.0.0.1", include_dashboard=False,
             runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING, **kwargs)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)


def alive_node_resources() -> list[dict[str, float]]:
    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def ensure_fits(demands: list[Demand]) -> None:
    check_fits(demands, alive_node_resources())


def ray_options(resources: dict[str, float]) -> dict:
    """Ray's actor options from a flat resource dict (CPU/GPU are keyword arguments)."""
    custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
    options = {"num_cpus": resources.get("CPU", 0.0), "num_gpus": resources.get("GPU", 0.0)}
    if custom:
        options["resources"] = custom
    return options
