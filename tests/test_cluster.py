"""A two-node Ray cluster on one machine (127.0.0.2 head, 127.0.0.3 worker), started by the test."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


def _ray_cli(args: list[str], env: dict) -> None:
    proc = subprocess.run([RAY, *args], env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise RuntimeError(f"ray {' '.join(args)} failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")


@pytest.fixture
def two_nodes(tmp_path):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    # Multi-node needs Ray's cluster mode, which RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (the
    # single-node loopback recipe) switches off; the explicit 127.0.0.2/3 node addresses keep
    # every node on loopback instead.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")  # loopback test cluster: no tokens
    port = _free_port()
    common = ["--disable-usage-stats", "--num-gpus=0"]
    _ray_cli(["start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}", "--num-cpus=3",
              "--resources={\"server\": 8}", "--include-dashboard=false", *common], env)
    try:
        _ray_cli(["start", f"--address=127.0.0.2:{port}", "--node-ip-address=127.0.0.3", "--num-cpus=1",
                  "--resources={\"edge\": 8}", *common], env)
        ray.init(address=f"127.0.0.2:{port}", _node_ip_address="127.0.0.2", log_to_driver=False)
        yield ray
    finally:
        from ray import serve

        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)


def test_trainers_land_on_the_server_node_and_edges_on_the_edge_node(two_nodes, cache_dir):
    from actors.fleet import run_fleet
    from ams_ray.fleet_plan import FleetConfig

    nodes = {n["NodeManagerAddress"]: n["NodeID"] for n in two_nodes.nodes() if n["Alive"]}
    assert set(nodes) == {"127.0.0.2", "127.0.0.3"}
    result = run_fleet(FleetConfig(clients=2, duration_s=30.0, speed=2.0, cache_dir=cache_dir, seed_base=600,
                                   teacher_cpus=0.25))
    assert result.failed == {}
    assert {t["node_id"] for t in result.trainers} == {nodes["127.0.0.2"]}
    assert {e["node_id"] for e in result.edges} == {nodes["127.0.0.3"]}
    assert all(e["updates_applied"] >= 1 for e in result.edges)
