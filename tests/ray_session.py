"""Helpers for tests that start and stop Ray clusters in one pytest process."""

import tempfile
from pathlib import Path


def shutdown_ray() -> None:
    """Stop Serve and Ray in this process and forget Serve's per-process router state.

    Serve caches one long-poll client per controller handle for the life of the process
    (`SharedRouterLongPollClient.get_or_create` is an lru_cache). A later cluster's controller
    can get the same actor id, so a handle to it would poll the dead cluster's controller and
    hang; clearing the cache is what lets one test process start several clusters in any order.
    """
    import ray
    from ray import serve
    from ray.serve._private.router import SharedRouterLongPollClient

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()
    SharedRouterLongPollClient.get_or_create.cache_clear()


def stop_nodes(gcs_port: int, timeout_s: float = 30.0) -> None:
    """Stop the Ray nodes of the cluster whose GCS listens on `gcs_port`, and only those.

    `ray stop --force` would kill every Ray process on the machine, other users' clusters
    included; a node started with `ray start` is found instead by its GCS address in its
    command line, and its workers and agents as that process's descendants.
    """
    import psutil

    marks = (f":{gcs_port} ", f"--gcs_server_port={gcs_port} ")
    roots = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or []) + " "
        if any(mark in line for mark in marks):
            roots.append(process)
    processes = {p.pid: p for root in roots for p in [root, *_descendants(root)]}
    for process in processes.values():
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(processes.values()), timeout=timeout_s)
    for process in alive:
        process.kill()
    _forget_cluster_address(gcs_port)


def _forget_cluster_address(gcs_port: int) -> None:
    """`ray start --head` records its address for later `ray.init()` calls; `ray stop` would
    remove it, so a stopped cluster's address is removed here too."""
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    try:
        if current.read_text().strip().endswith(f":{gcs_port}"):
            current.unlink()
    except FileNotFoundError:
        pass


def _descendants(process) -> list:
    import psutil

    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
