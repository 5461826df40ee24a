"""The Teacher deployment: one batched labelling service shared by every stream.

The replica gets its teacher as a `TeacherSpec`, read on the driver: the files a spec names
travel as bytes, since the replica may run on a node without them. Each request is one frame
(with its source key and frame index, which the oracle and label directories need; never a path); `@serve.batch` gathers requests from all streams into
one `TeacherPool.label_many` call, so a model teacher runs one forward pass per batch. Every
reply carries the size of the batch it rode in, which is how callers measure batching
without a side channel.

Serve replaces a replica that dies or fails `check_health`; callers retry a request that
was in flight on it once (`actors/trainer.py`).
"""

from __future__ import annotations

import os
import time

import numpy as np
from ray import serve

from actors.telemetry import TeacherMetrics
from ams_ray.teach.teacher_spec import TeacherSpec, read_spec
from ams_ray.teach.teachers import TeacherPool

DEPLOYMENT_NAME = "Teacher"
APP_NAME = "ams-teacher"
UNHEALTHY_AFTER_FAILED_BATCHES = 3  # in a row: the replica's teacher is broken, not one request


@serve.deployment(name=DEPLOYMENT_NAME)
class TeacherDeployment:
    def __init__(self, spec: TeacherSpec, max_batch_size: int, batch_wait_s: float, device: str = "cpu",
                 threads: int = 1) -> None:
        self.pool = TeacherPool(spec, device)
        if not self.pool.cached:  # a model: as many torch threads as the replica has CPUs
            import torch

            torch.set_num_threads(threads)
        self._label_batch.set_max_batch_size(max_batch_size)
        self._label_batch.set_batch_wait_timeout_s(batch_wait_s)
        self._queued = 0
        self._failed_batches = 0
        self.metrics = TeacherMetrics(DEPLOYMENT_NAME, lambda: self._queued)

    async def label(self, request: tuple[str | None, int, np.ndarray]) -> tuple[np.ndarray, int, float]:
        """One frame -> (labels, size of the batch it rode in, seconds that batch took)."""
        self._queued += 1
        try:
            result = await self._label_batch(request)
        finally:
            self._queued -= 1
        if isinstance(result, Exception):
            raise result
        return result

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _label_batch(self, requests: list[tuple[str | None, int, np.ndarray]]) -> list:
        """A batch fails only the requests that caused it: on an error, each request is
        retried alone and those that still fail get their own exception back."""
        began = time.perf_counter()
        try:
            labels: list = self.pool.label_many(requests)
        except Exception:  # noqa: BLE001 - isolated per request below
            labels = [self._label_alone(request) for request in requests]
        failed = all(isinstance(l, Exception) for l in labels)
        self._failed_batches = self._failed_batches + 1 if failed else 0
        seconds = time.perf_counter() - began
        self.metrics.batch(len(requests), seconds)
        return [l if isinstance(l, Exception) else (l, len(requests), seconds) for l in labels]

    def _label_alone(self, request: tuple[str | None, int, np.ndarray]) -> np.ndarray | Exception:
        try:
            return self.pool.label_many([request])[0]
        except Exception as exc:  # noqa: BLE001 - returned to that request's caller
            self.metrics.errors.count("teacher_failed")
            return exc

    def check_health(self) -> None:
        """Serve calls this periodically and replaces the replica when it raises."""
        if self._failed_batches >= UNHEALTHY_AFTER_FAILED_BATCHES:
            raise RuntimeError(f"teacher {self.pool.spec.text!r}: the last {self._failed_batches} batches all failed")

    def process(self) -> dict:
        """The replica's process id, torch threads and CPU seconds so far: for benchmarks that pin
        it to cores, and for the share of the server's CPU the teacher takes."""
        import sys

        threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
        return {"pid": os.getpid(), "torch_threads": threads, "cpu_seconds": time.process_time()}

    async def num_classes(self, label_key: str | None = None) -> int:
        return self.pool.teacher_for(label_key).num_classes


def teacher_app(
    spec: str | TeacherSpec,
    replicas: int = 1,
    max_batch_size: int = 8,
    batch_wait_s: float = 0.02,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    custom_resources: dict[str, float] | None = None,
    max_replicas: int | None = None,
    autoscaling: dict[str, float] | None = None,
):
    """The bound application. `max_ongoing_requests` is well above the batch, for two reasons:
    Serve would otherwise hand each replica too few requests to ever fill a batch; and every
    calling process has its own router, so when a saturated replica refuses requests the
    callers retry for its slots, where a few trainer hosts can lose out to dozens of edges
    sending frames to score (a 32-stream run on an overloaded machine, with the old limit of 16,
    had 35 training frames labelled against 1053 scoring frames). Admitted, requests wait in
    the batch queue in arrival order, so each caller gets its share. With `max_replicas`, Serve autoscales from
    `replicas` up to it, aiming at one full batch ongoing per replica; `autoscaling` sets any other field of
    Serve's `autoscaling_config` (e.g. `upscale_delay_s`, 30 s by default)."""
    device = "cuda" if num_gpus > 0 else "cpu"
    scaling = ({"autoscaling_config": {"min_replicas": replicas, "max_replicas": max_replicas,
                                       "target_ongoing_requests": max_batch_size, **(autoscaling or {})}}
               if max_replicas else {"num_replicas": replicas})
    return TeacherDeployment.options(
        **scaling,
        max_ongoing_requests=max(8 * max_batch_size, 64),
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus, "resources": custom_resources or {}},
    ).bind(read_spec(spec), max_batch_size, batch_wait_s, device, max(1, round(num_cpus)))
