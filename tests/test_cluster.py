"""Two Ray nodes on one machine that share no data directory, started (and stopped) by the test.

The head (127.0.0.2, role "edge") runs the driver and the edges; the worker (127.0.0.3, role
"server") runs the trainers and the teacher inside its own mount namespace, where a private
tmpfs hides the video cache and the default checkpoint directory: nothing one node writes
there is visible to the other. What stands in for S3 is the one directory both namespaces
mount, passed as the checkpoint store.

The driver runs in a fresh process of its own (with auth off, like the nodes): a driver that
had started another cluster earlier in this pytest process keeps that cluster's settings
(token auth among them) and would hang on its first request to this one.
"""

import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from tests.ray_session import shutdown_ray, stop_nodes

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


def _run(command: list[str], env: dict) -> None:
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")


@pytest.fixture
def nodes_sharing_no_disk(tmp_path, monkeypatch):
    assert os.geteuid() == 0 and shutil.which("unshare"), "a private mount namespace needs root and unshare"
    shutdown_ray()  # whatever ran before, this test owns its cluster
    cache = tmp_path / "cache"  # each node's own video cache (AMS_RAY_CACHE), private on the worker
    cache.mkdir()
    # Multi-node needs Ray's cluster mode, which RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (the
    # single-node loopback recipe) switches off; the explicit 127.0.0.2/3 node addresses keep
    # every node on loopback instead.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", AMS_RAY_CACHE=str(cache))
    # An earlier ray.init in this process set RAY_AUTH_MODE=token in os.environ; a driver that
    # inherited it would sign its calls for a cluster that has auth off, and its replies never come.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port = _free_port()
    common = ["--disable-usage-stats", "--num-gpus=0"]
    _run([RAY, "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}", "--num-cpus=2",
          "--resources={\"edge\": 8}", "--include-dashboard=false", *common], env)
    try:
        worker = " ".join([RAY, "start", f"--address=127.0.0.2:{port}", "--node-ip-address=127.0.0.3",
                           "--num-cpus=3", "--resources='{\"server\": 8}'", *common])
        _run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
              f"mount -t tmpfs tmpfs {cache} && exec {worker}"], env)
        yield f"127.0.0.2:{port}", cache
    finally:
        stop_nodes(port)  # these two nodes only: not `ray stop`, which stops every cluster on the machine


def _kill_after_first_checkpoint(store: Path, stream_id: str, trainers: dict, killed: list) -> None:
    """Kill the stream's trainer once its log in the shared store holds an acknowledged packet
    (bounded wait)."""
    import ray

    for _ in range(600):
        if any(_logs_a_packet(run, stream_id) for run in store.glob("run-*")):
            ray.kill(trainers[stream_id], no_restart=False)
            killed.append(time.time())
            return
        time.sleep(0.2)


def _logs_a_packet(run: Path, stream_id: str) -> bool:
    from ams_ray.service.checkpoint_store import CheckpointStore
    from ams_ray.service.stream_log import StreamLog
    from ams_ray.wire.stream_records import PACKET

    return any(kind == PACKET for _, kind, _ in StreamLog(CheckpointStore(run), stream_id).read().records)


def _drive(address: str, cache: Path, s3_standin: Path) -> dict:
    """The driver: runs two streams, kills one trainer after its first checkpoint; returns facts."""
    import ray

    from ams_ray.fleet.plan import FleetConfig
    from serve.fleet import run_fleet

    ray.init(address=address, _node_ip_address="127.0.0.2", log_to_driver=False)
    try:
        nodes = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}

        @ray.remote(num_cpus=0, resources={"server": 0.001})
        def server_sees(path: str) -> list[str]:
            return sorted(p.name for p in Path(path).iterdir())

        killed: list[float] = []

        def on_started(edges, trainers):
            threading.Thread(target=_kill_after_first_checkpoint, args=(s3_standin, "stream-600", trainers, killed),
                             daemon=True).start()

        result = run_fleet(FleetConfig(clients=2, duration_s=45.0, speed=1.5, seed_base=600, teacher_cpus=0.25,
                                       checkpoint_store=str(s3_standin)), on_started=on_started)
        return {"nodes": nodes, "failed": result.failed, "trainers": result.trainers, "edges": result.edges,
                "killed": killed, "server_sees": ray.get(server_sees.remote(str(cache)), timeout=60)}
    finally:
        shutdown_ray()


def test_streams_run_and_resume_across_nodes_that_share_no_disk(nodes_sharing_no_disk, tmp_path):
    address, cache = nodes_sharing_no_disk
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        facts = pool.submit(_drive, address, cache, tmp_path / "s3-standin").result(timeout=900)
    nodes = facts["nodes"]
    assert set(nodes) == {"127.0.0.2", "127.0.0.3"}
    assert facts["failed"] == {}
    assert {t["node_id"] for t in facts["trainers"]} == {nodes["127.0.0.3"]}
    assert {e["node_id"] for e in facts["edges"]} == {nodes["127.0.0.2"]}
    # the edges rendered their videos on the head; the server node never saw them
    assert any(p.name.startswith("synthetic-s600") for p in cache.iterdir())
    assert facts["server_sees"] == []
    # the killed trainer came back on the server node and resumed from the shared store
    assert facts["killed"], "the stream never wrote a checkpoint to the shared store"
    trainer = next(t for t in facts["trainers"] if t["stream_id"] == "stream-600")
    assert trainer["restarted"] and trainer["resumed_from_packet"] >= 1
    edge = next(e for e in facts["edges"] if e["stream_id"] == "stream-600")
    keys = ("chunks", "rounds", "missing_chunks", "resyncs", "packets_posted", "resumed_from_packet", "checkpoint")
    assert any(t > facts["killed"][0] for t in edge["applied_wall"]) and edge["rejected_packets"] == [], \
        (facts["killed"], edge["applied_wall"], {k: trainer.get(k) for k in keys},
         {k: edge.get(k) for k in ("chunks", "upload_errors", "upload_timeouts", "updates_applied", "shed_chunks",
                                   "packets_missed", "frames")})


def test_the_service_refuses_a_state_directory_the_other_node_cannot_see(nodes_sharing_no_disk, tmp_path):
    """`python -m serve.app --address` on two nodes with a local --state-dir: a host started on
    the other node would find no stream logs there, so the service refuses to start and says
    what to pass instead."""
    address, _ = nodes_sharing_no_disk
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    result = subprocess.run([sys.executable, "-m", "serve.app", "--address", address, "--state-dir",
                             str(tmp_path / "state"), "--port", str(_free_port())],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "2 nodes" in result.stderr and "fsspec URL" in result.stderr and "--shared-state" in result.stderr
    assert "Traceback" not in result.stderr
