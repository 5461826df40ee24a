"""The catalogue of every metric ams-ray exports: one source of truth, no Ray.

The Ray actors instantiate these with `ray.util.metrics` (`actors/telemetry.py`); the
Grafana dashboard's queries and the Prometheus test are checked against this list. Ray's
exporter prefixes every name with `ray_`, which `exported_name` adds.

Names follow Prometheus conventions (base units in the name, `_total` on counters, `_ratio`
for 0..1). Labels are bounded: a stream id (one per device), a deployment, a component and
an error kind, a purpose (training or scoring); never a frame index or a packet sequence.

Ray 2.60's exporter reports a histogram's `_sum` from bucket midpoints, so means that must
be exact come from counter pairs instead (teacher mean batch = frames / batches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RAY_PREFIX = "ray_"
STREAM = ("stream",)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Literal["counter", "gauge", "histogram"]
    description: str
    tags: tuple[str, ...]
    boundaries: tuple[float, ...] = ()

    @property
    def exported_name(self) -> str:
        return RAY_PREFIX + self.name

    @property
    def series_names(self) -> tuple[str, ...]:
        """Every series name Prometheus stores for this metric."""
        if self.kind == "histogram":
            return tuple(f"{self.exported_name}_{s}" for s in ("bucket", "count", "sum"))
        return (self.exported_name,)


SECONDS_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SECONDS_SLOW = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

CATALOGUE: tuple[MetricSpec, ...] = (
    # --- per stream, from the edge (what the device sees) ---
    MetricSpec("ams_stream_miou_ratio", "gauge", "mIoU (0..1) of the device's current model over the last "
               "10 s of video, against the teacher's labels", STREAM),
    MetricSpec("ams_stream_pretrained_miou_ratio", "gauge", "mIoU (0..1) of the never-updated pretrained student "
               "on the same frames over the same window: the baseline of the gain", STREAM),
    MetricSpec("ams_stream_sampling_frames_per_second", "gauge", "frames per second of video the device samples "
               "for upload, as last set by the server (ASR)", STREAM),
    MetricSpec("ams_stream_frames_played_total", "counter", "video frames the device has run its model on", STREAM),
    MetricSpec("ams_stream_frames_uploaded_total", "counter", "sampled frames uploaded to the server", STREAM),
    MetricSpec("ams_stream_uplink_bytes_total", "counter", "bytes of H.264 sample chunks uploaded", STREAM),
    MetricSpec("ams_stream_downlink_bytes_total", "counter", "bytes of update packets received (applied or not)",
               STREAM),
    MetricSpec("ams_stream_updates_applied_total", "counter", "update packets the device applied", STREAM),
    MetricSpec("ams_stream_update_staleness_seconds", "histogram", "wall time from the upload that made a "
               "training round due until its packet was applied on the device", STREAM, SECONDS_SLOW),
    # --- per stream, from the trainer (what the server spends) ---
    MetricSpec("ams_stream_training_duration_seconds", "histogram", "wall time of one training round "
               "(iterations + coordinate selection + packet encoding)", STREAM, SECONDS_SLOW),
    MetricSpec("ams_stream_turn_wait_seconds", "histogram", "wall time a due round waited for the scheduler "
               "to grant its device", STREAM, SECONDS_SLOW),
    MetricSpec("ams_stream_expected_gain_ratio", "gauge", "mIoU (0..1) one more round could still win for the "
               "stream: how far its device's model fell below the best agreement with the teacher its training "
               "reached, plus scene drift (measured under the gain scheduler)", STREAM),
    MetricSpec("ams_stream_round_priority_score", "gauge", "what the scheduler ranked the stream's newest due round "
               "by (gain: expected mIoU points per training second; 1e6 and up: at its fairness floor)", STREAM),
    MetricSpec("ams_stream_rounds_total", "counter", "due rounds by what the scheduler did with them: trained, "
               "stepped_aside (still waiting when the stream's next chunk came), hibernating (its model agrees "
               "with the teacher) or outpaced (its rounds lately left it below the pretrained model); and "
               "reverted: the device was sent the pretrained model, its own having fallen "
               "below it", ("stream", "outcome")),
    MetricSpec("ams_stream_label_backlog_chunks", "gauge", "accepted chunks of the stream waiting to be labelled; "
               "above one, the device is told a lower sampling rate", STREAM),
    MetricSpec("ams_stream_log_bytes_total", "counter", "bytes the stream's durable log wrote to the checkpoint "
               "store (chunks, packets, snapshots, manifests); about the stream's uplink + downlink", STREAM),
    # --- the shared teacher ---
    MetricSpec("ams_teacher_batch_size", "histogram", "frames per batched teacher call", ("deployment",),
               (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)),
    MetricSpec("ams_teacher_frames_total", "counter", "frames labelled by the teacher, for training or for "
               "scoring", ("deployment", "purpose")),
    MetricSpec("ams_teacher_batches_total", "counter", "batched teacher calls", ("deployment",)),
    MetricSpec("ams_teacher_latency_seconds", "histogram", "wall time of one batched teacher call",
               ("deployment",), SECONDS_FAST),
    MetricSpec("ams_teacher_queued_requests", "gauge", "label requests waiting at the replica for a batch, "
               "by purpose (training is served first)", ("deployment", "purpose")),
    # --- failures ---
    MetricSpec("ams_errors_total", "counter", "errors by component and kind (a refused packet, an upload "
               "timeout, a resent or superseded packet, a chunk gap or shed chunk, a skipped round, a shed scoring "
               "frame, a teacher failure)", ("component", "kind")),
)

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in CATALOGUE}


def exported_series() -> set[str]:
    """All series names a Prometheus scraping Ray can hold for ams-ray."""
    return {s for m in CATALOGUE for s in m.series_names}
