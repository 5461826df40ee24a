"""NodeMemory: one per node, samples that machine's memory from launch until the report.

The driver's own machine is not the cluster: on a real cluster the trainers, the teacher and
the edges run elsewhere, so each node reports its own `psutil.virtual_memory()` (in use =
total - available, Ray's own processes included) once a second, and the run's peak is taken
per machine (`ams_ray.fleet.report.machine_memory`).
"""

from __future__ import annotations

import socket
import threading
import time

import psutil
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

SAMPLE_EVERY_S = 1.0


@ray.remote(num_cpus=0, max_restarts=0)
class NodeMemory:
    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (wall time, GiB in use)
        self._lock = threading.Lock()
        self._sample()
        threading.Thread(target=self._loop, name="ams-node-memory", daemon=True).start()

    def _sample(self) -> None:
        memory = psutil.virtual_memory()
        with self._lock:
            self.samples.append((time.time(), (memory.total - memory.available) / 2**30))

    def _loop(self) -> None:
        while True:
            time.sleep(SAMPLE_EVERY_S)
            self._sample()

    def report(self) -> dict:
        self._sample()
        with self._lock:
            samples = list(self.samples)
        return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
                "total_gib": psutil.virtual_memory().total / 2**30, "samples": samples}


def start_probes() -> list:
    """One probe pinned to each alive node."""
    return [NodeMemory.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in ray.nodes() if n.get("Alive")]
