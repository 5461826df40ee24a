"""The Teacher deployment: one batched labelling service shared by every stream.

The replica gets its teacher as a `TeacherSpec`, read on the driver: the files a spec names
travel as bytes, since the replica may run on a node without them. Each request is one frame
(with its source key and frame index, which the oracle and label directories need; never a
path) and a purpose: training or scoring. The replica's `LabelQueue` gathers requests from
all streams into batches of one purpose, training first, and sheds scoring frames under
load; each batch is one `TeacherPool.label_many` call (one forward pass of a model teacher),
run on a thread so requests keep arriving meanwhile. Every reply carries the size of the
batch it rode in, which is how callers measure batching without a side channel.

Serve replaces a replica that dies or fails `check_health`; callers retry a request that
was in flight on it once (`actors/trainer.py`).
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from ray import serve

from actors.telemetry import TeacherMetrics
from ams_ray.teach.label_queue import PURPOSES, LabelQueue, Purpose
from ams_ray.teach.teacher_spec import TeacherSpec, read_spec
from ams_ray.teach.teachers import TeacherPool

DEPLOYMENT_NAME = "Teacher"
APP_NAME = "ams-teacher"
UNHEALTHY_AFTER_FAILED_BATCHES = 3  # in a row: the replica's teacher is broken, not one request
MAX_SCORING_WAIT_S = 20.0  # a scoring frame that waited this long behind training is shed, not labelled
SCORING_BATCHES_WAITING = 16  # scoring frames kept waiting, in batches: a bound on memory, not on load


@serve.deployment(name=DEPLOYMENT_NAME)
class TeacherDeployment:
    def __init__(self, spec: TeacherSpec, max_batch_size: int, batch_wait_s: float, device: str = "cpu",
                 threads: int = 1, max_scoring_wait_s: float = MAX_SCORING_WAIT_S) -> None:
        self.pool = TeacherPool(spec, device)
        if not self.pool.cached:  # a model: as many torch threads as the replica has CPUs
            import torch

            torch.set_num_threads(threads)
        self.batch_wait_s = batch_wait_s
        self.queue = LabelQueue(max_batch_size, max_scoring_waiting=SCORING_BATCHES_WAITING * max_batch_size,
                                max_scoring_wait_s=max_scoring_wait_s)
        self.busy_s = 0.0  # seconds spent inside batches
        self.started = time.monotonic()
        self._batches: asyncio.Task | None = None  # the batch loop, started on the replica's event loop
        self._labeller = ThreadPoolExecutor(1, thread_name_prefix="ams-teacher")
        self._failed_batches = 0
        self.metrics = TeacherMetrics(DEPLOYMENT_NAME, self.queue.length)

    async def label(self, request: tuple[str | None, int, np.ndarray],
                    purpose: Purpose = "training") -> tuple[np.ndarray, int, float]:
        """One frame -> (labels, size of the batch it rode in, seconds that batch took).
        Raises ScoringShed for a scoring request dropped under load."""
        if self._batches is None or self._batches.done():
            self._batches = asyncio.get_running_loop().create_task(self._serve_batches())
        return await self.queue.put(request, purpose)

    async def _serve_batches(self) -> None:
        """The replica's one labelling loop. The model runs on a thread, so requests keep
        arriving (and are put in order) while a batch is labelled."""
        loop = asyncio.get_running_loop()
        while True:
            shed = self.queue.counts.shed
            purpose, batch = await self.queue.next_batch(self.batch_wait_s)
            self.metrics.errors.count("scoring_shed", self.queue.counts.shed - shed)
            began = time.perf_counter()
            labels = await loop.run_in_executor(self._labeller, self._label_batch, [w.request for w in batch])
            seconds = time.perf_counter() - began
            self.busy_s += seconds
            self.metrics.batch(len(batch), seconds, purpose)
            for waiting, result in zip(batch, labels):
                if waiting.future.done():
                    continue  # its caller gave up
                if isinstance(result, Exception):
                    waiting.future.set_exception(result)
                else:
                    waiting.future.set_result((result, len(batch), seconds))

    def _label_batch(self, requests: list[tuple[str | None, int, np.ndarray]]) -> list:
        """A batch fails only the requests that caused it: on an error, each request is
        retried alone and those that still fail get their own exception back."""
        try:
            labels: list = self.pool.label_many(requests)
        except Exception:  # noqa: BLE001 - isolated per request below
            labels = [self._label_alone(request) for request in requests]
        failed = all(isinstance(l, Exception) for l in labels)
        self._failed_batches = self._failed_batches + 1 if failed else 0
        return labels

    def _label_alone(self, request: tuple[str | None, int, np.ndarray]) -> np.ndarray | Exception:
        try:
            return self.pool.label_many([request])[0]
        except Exception as exc:  # noqa: BLE001 - returned to that request's caller
            self.metrics.errors.count("teacher_failed")
            return exc

    def load(self) -> dict:
        """What this replica was asked for and did, by purpose, for capacity checks: frames
        arrived, served and waiting, scoring frames shed, seconds spent labelling, and the
        purpose and size of its last batches in order."""
        counts = self.queue.counts
        return {"arrived": dict(counts.arrived), "served": dict(counts.served), "shed": counts.shed,
                "waiting": {p: self.queue.length(p) for p in PURPOSES}, "busy_s": self.busy_s,
                "recent_batches": list(self.queue.recent),
                "uptime_s": time.monotonic() - self.started}

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
    max_scoring_wait_s: float = MAX_SCORING_WAIT_S,
):
    """The bound application. `max_ongoing_requests` is far above the batch: the replica's own
    queue (`LabelQueue`) decides what is labelled first and sheds scoring frames, which it can
    only do with the requests in hand. Left to Serve, every calling process has its own router,
    and when a saturated replica refuses requests the callers retry for its slots, where a few
    trainer hosts lose out to dozens of edges sending frames to score (a 32-stream run on an
    overloaded machine, with a limit of 16, had 35 training frames labelled against 1053
    scoring frames). With `max_replicas`, Serve autoscales from `replicas` up to it, aiming at
    one full batch ongoing per replica; `autoscaling` sets any other field of Serve's
    `autoscaling_config` (e.g. `upscale_delay_s`, 30 s by default). A scoring frame is shed
    when it has waited `max_scoring_wait_s` behind training: load, not a burst, sheds it."""
    device = "cuda" if num_gpus > 0 else "cpu"
    scaling = ({"autoscaling_config": {"min_replicas": replicas, "max_replicas": max_replicas,
                                       "target_ongoing_requests": max_batch_size, **(autoscaling or {})}}
               if max_replicas else {"num_replicas": replicas})
    return TeacherDeployment.options(
        **scaling,
        max_ongoing_requests=max(64 * max_batch_size, 256),
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus, "resources": custom_resources or {}},
    ).bind(read_spec(spec), max_batch_size, batch_wait_s, device, max(1, round(num_cpus)), max_scoring_wait_s)
