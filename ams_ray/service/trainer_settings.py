"""What every trainer host of a run or a service is told besides its streams.

The benchmark's planner and the service's ingress both make one; the host only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainerSettings:
    """What a trainer process needs besides its stream, the same for every stream of a run."""

    checkpoint_url: str  # the store of the streams' logs (a directory or an fsspec URL)
    call_timeout_s: float  # a training turn, the coordinator's answer
    fused: bool = False
    fusion_window_s: float = 0.25
    idle_retire_s: float | None = None  # a stream no device touched this long is closed (checkpoint kept)
    label_timeout_s: float = 300.0  # a chunk's labels from the teacher (training frames are served first)
    label_backlog_chunks: int = 4  # per stream, chunks waiting for labels before the next is shed
    snapshot_after_bytes: int | None = None  # packets a restore may replay before a snapshot (None: the weights' size)
    scheduler: str = "fifo"  # which due round trains first (`ams_ray.service.round_policy`)
    fairness_floor_periods: float = 4.0  # gain: no round waits longer than this many training periods
    hibernate_gain: float = 4.0  # gain: a stream whose next round would win fewer mIoU points asks for none
