"""The catalogue of `ams_ray.telemetry` as live `ray.util.metrics` objects.

Each actor builds the few it records once, binds its bounded labels (stream id,
deployment) as default tags, and records with plain calls; Ray exports them on the node's
metrics port (prefix `ray_`), where Prometheus scrapes them.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from ray.util import metrics as ray_metrics

from ams_ray.teach.label_queue import PURPOSES
from ams_ray.telemetry import BY_NAME


def make(name: str, **default_tags: str):
    """A Ray metric for a catalogue entry, with `default_tags` bound (e.g. stream="stream-003")."""
    spec = BY_NAME[name]
    if spec.kind == "counter":
        metric = ray_metrics.Counter(spec.name, description=spec.description, tag_keys=spec.tags)
    elif spec.kind == "gauge":
        metric = ray_metrics.Gauge(spec.name, description=spec.description, tag_keys=spec.tags)
    else:
        metric = ray_metrics.Histogram(spec.name, description=spec.description, boundaries=list(spec.boundaries),
                                       tag_keys=spec.tags)
    if default_tags:
        metric.set_default_tags(default_tags)
    return metric


class LiveGauges:
    """Keeps gauges exported: re-sets each from its source every `every_s` in a daemon thread.

    Ray 2.60 stops exporting a gauge that has not been set for two report intervals, so a
    value that only changes with events (a queue between requests, a finished stream's
    last mIoU) would vanish from Prometheus while its actor is still alive.
    """

    def __init__(self, every_s: float = 1.0) -> None:
        self._sources: dict[str, tuple[object, Callable[[], float]]] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, args=(every_s,), name="ams-live-gauges", daemon=True).start()

    def track(self, key: str, gauge, source: Callable[[], float]) -> None:
        with self._lock:
            self._sources[key] = (gauge, source)
        gauge.set(source())

    def set(self, key: str, gauge, value: float) -> None:
        self.track(key, gauge, lambda: value)

    def _loop(self, every_s: float) -> None:
        while True:
            time.sleep(every_s)
            with self._lock:
                sources = list(self._sources.values())
            for gauge, source in sources:
                gauge.set(source())


class ErrorCounter:
    """`ams_errors_total` for one component: `count("rejected_packet")`."""

    def __init__(self, component: str) -> None:
        self._counter = make("ams_errors_total", component=component)

    def count(self, kind: str, n: int = 1) -> None:
        if n > 0:
            self._counter.inc(n, tags={"kind": kind})


class EdgeMetrics:
    """What one device reports: accuracy, sampling, bytes each way, updates and their staleness."""

    def __init__(self, stream_id: str) -> None:
        tags = {"stream": stream_id}
        self.miou = make("ams_stream_miou_ratio", **tags)
        self.pretrained_miou = make("ams_stream_pretrained_miou_ratio", **tags)
        self.sampling_rate = make("ams_stream_sampling_frames_per_second", **tags)
        self.frames_played = make("ams_stream_frames_played_total", **tags)
        self.frames_uploaded = make("ams_stream_frames_uploaded_total", **tags)
        self.uplink_bytes = make("ams_stream_uplink_bytes_total", **tags)
        self.downlink_bytes = make("ams_stream_downlink_bytes_total", **tags)
        self.updates_applied = make("ams_stream_updates_applied_total", **tags)
        self.staleness = make("ams_stream_update_staleness_seconds", **tags)
        self.errors = ErrorCounter("edge")
        self.live = LiveGauges()

    def uploaded(self, frames: int, num_bytes: int) -> None:
        self.frames_uploaded.inc(frames)
        self.uplink_bytes.inc(num_bytes)

    def packet(self, num_bytes: int, applied: bool, staleness_s: float) -> None:
        self.downlink_bytes.inc(num_bytes)
        if applied:
            self.updates_applied.inc()
            self.staleness.observe(staleness_s)
        else:
            self.errors.count("rejected_packet")

    def evaluated(self, frames_played: int, miou_percent: float, pretrained_percent: float, rate_fps: float) -> None:
        if frames_played > 0:
            self.frames_played.inc(frames_played)
        self.live.set("miou", self.miou, miou_percent / 100.0)
        self.live.set("pretrained_miou", self.pretrained_miou, pretrained_percent / 100.0)
        self.live.set("sampling_rate", self.sampling_rate, rate_fps)


class TrainerMetrics:
    """What the server spends on one stream: training time, waits for the device, its labelling
    backlog, chunk problems."""

    def __init__(self, stream_id: str, backlog: Callable[[], int], expected_gain: Callable[[], float],
                 priority: Callable[[], float]) -> None:
        """`backlog()`, `expected_gain()` and `priority()` are sampled every second (gauges that
        only change with events would otherwise stop being exported)."""
        self.training = make("ams_stream_training_duration_seconds", stream=stream_id)
        self.turn_wait = make("ams_stream_turn_wait_seconds", stream=stream_id)
        self.backlog = make("ams_stream_label_backlog_chunks", stream=stream_id)
        self.log_bytes = make("ams_stream_log_bytes_total", stream=stream_id)
        self.rounds = make("ams_stream_rounds_total", stream=stream_id)
        self.errors = ErrorCounter("trainer")
        self.live = LiveGauges()
        self.live.track("backlog", self.backlog, backlog)
        self.live.track("expected_gain", make("ams_stream_expected_gain_ratio", stream=stream_id), expected_gain)
        self.live.track("priority", make("ams_stream_round_priority_score", stream=stream_id), priority)


class TeacherMetrics:
    """The shared teacher's batching, latency and queue, by purpose where it differs."""

    def __init__(self, deployment: str, queue_length: Callable[[str], int]) -> None:
        """`queue_length(purpose)` is sampled every second: the queue moves with every request."""
        tags = {"deployment": deployment}
        self.batch_size = make("ams_teacher_batch_size", **tags)
        self.frames = make("ams_teacher_frames_total", **tags)
        self.batches = make("ams_teacher_batches_total", **tags)
        self.latency = make("ams_teacher_latency_seconds", **tags)
        self.errors = ErrorCounter("teacher")
        self.live = LiveGauges()
        for purpose in PURPOSES:
            queued = make("ams_teacher_queued_requests", **tags, purpose=purpose)
            self.live.track(f"queued-{purpose}", queued, lambda p=purpose: queue_length(p))

    def batch(self, size: int, seconds: float, purpose: str) -> None:
        self.batch_size.observe(size)
        self.frames.inc(size, tags={"purpose": purpose})
        self.batches.inc()
        self.latency.observe(seconds)
