"""One stream, one strategy, on the video's own clock: the single-stream AMS experiment.

The loop plays the video frame by frame. The device samples and uploads chunks; the
server labels them and trains when due; an update reaches the device only once its
training would have finished (measured wall time of the round) plus its transfer time at
the configured link rate. mIoU is always that of the model the device holds at that frame.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from ams_ray.accuracy import MiouTrace, frame_miou
from ams_ray.config import AmsConfig
from ams_ray.data.datasets import VideoSource
from ams_ray.data.label_lookup import Teacher
from ams_ray.data.video import VideoReader
from ams_ray.device.client import DeviceClient
from ams_ray.evaluation.scoring_labels import ScoringLabels
from ams_ray.learn.distill import OnlineDistiller
from ams_ray.learn.session import StreamSession
from ams_ray.learn.strategies import StrategySpec
from ams_ray.models.students import build_student
from ams_ray.teach.teacher_spec import TeacherSpec, read_spec
from ams_ray.teach.teachers import build_teacher, checked_labels


@dataclass
class StreamResult:
    strategy: str
    miou: float  # against the truth
    miou_vs_teacher: float  # against the teacher's labels of the same frames
    teacher_miou: float  # the teacher's own labels against the truth
    uplink_kbps: float
    downlink_kbps: float
    duration_s: float
    wall_s: float
    updates_sent: int  # packets the server made; one still in flight when the video ends is never applied
    updates_applied: int
    mean_packet_bytes: float  # over the packets sent
    mean_shadow_packet_bytes: float  # the same updates in the other packet encoding
    skipped_rounds: list[str] = field(default_factory=list)
    rejected_packets: list[str] = field(default_factory=list)
    times_s: list[float] = field(default_factory=list)
    miou_trace: list[float] = field(default_factory=list)
    rate_history: list[tuple[float, float]] = field(default_factory=list)
    period_history: list[tuple[float, float]] = field(default_factory=list)

    def row(self) -> dict:
        keys = ("strategy", "miou", "miou_vs_teacher", "uplink_kbps", "downlink_kbps", "updates_sent", "updates_applied",
                "mean_packet_bytes",
                "mean_shadow_packet_bytes")
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items() if k in keys}


def simulate_stream(
    source: VideoSource,
    teacher_spec: str | TeacherSpec,
    student_spec: str,
    config: AmsConfig,
    spec: StrategySpec,
    max_duration_s: float | None = None,
    progress: Callable[[int], None] | None = None,
    truth_spec: str | TeacherSpec | None = None,
    scoring: ScoringLabels | None = None,
) -> StreamResult:
    """`truth_spec` scores the device (default: `default_truth`); the student learns from the
    teacher. `scoring`: the teacher's labels of the scored frames, made once by the caller
    (`scoring_labels`); without it they are made here."""
    began = time.perf_counter()
    h, w = config.video.height, config.video.width
    reader = VideoReader(source.path, h, w)
    teacher_spec = read_spec(teacher_spec)
    truth_spec = read_spec(truth_spec or default_truth(source, teacher_spec.text))
    teacher: Teacher = build_teacher(teacher_spec, source.label_key)
    truth = teacher if truth_spec.text == teacher_spec.text else build_teacher(truth_spec, source.label_key)
    teacher_vs_truth = MiouTrace()
    student = build_student(student_spec, teacher.num_classes)
    shadow = "ams" if config.packet_format == "compact" else "compact"
    distiller = OnlineDistiller(student, config.training, spec.strategy, stream_id=source.name,
                                encoding=config.packet_format, seed=config.seed, shadow_encoding=shadow)
    edge = DeviceClient(source.name, distiller.edge_bundle(h, w), config.sampling.initial_rate_fps,
                      config.training.send_period_s, config.video.chunk_crf)
    session = StreamSession(distiller, lambda f, i: checked_labels(teacher, f, i), teacher.num_classes,
                            config, asr=spec.asr, atr=spec.atr)
    link_bytes_per_s = config.link.downlink_kbps * 1000 / 8
    in_flight: list[tuple[float, bytes]] = []
    packet_sizes: list[int] = []
    fps = reader.fps
    max_frames = int(max_duration_s * fps) if max_duration_s else None
    edge.uploading = training_active = spec.train
    frames_seen = 0
    for index, frame in enumerate(reader):
        if max_frames is not None and index >= max_frames:
            break
        now = index / fps
        frames_seen += 1
        while in_flight and in_flight[0][0] <= now:
            edge.apply_packet(in_flight.pop(0)[1])
        chunk = edge.observe(index, now, frame)
        if chunk is not None:
            edge.set_sampling_rate(session.receive(chunk))
        if training_active and _training_due(spec, session, config, now):
            result = _train_once(session, config, now) if spec.one_time else session.train(now)
            if result.packet is not None:
                ready = now + result.duration_s + len(result.packet) / link_bytes_per_s
                in_flight.append((ready, result.packet))
                packet_sizes.append(len(result.packet))
            if spec.one_time:
                edge.uploading = training_active = False
        if index % config.eval_every == 0:
            teacher_labels = (scoring.labels(index) if scoring is not None
                              else checked_labels(teacher, frame[None], [index])[0])
            truth_labels = teacher_labels if truth is teacher else checked_labels(truth, frame[None], [index])[0]
            edge.evaluate(now, frame, truth_labels, teacher_labels)
            teacher_vs_truth.add(now, frame_miou(truth_labels, teacher_labels, teacher.num_classes))
        if progress and index % 50 == 49:
            progress(50)
    if progress:
        progress(frames_seen % 50)
    duration = frames_seen / fps
    return StreamResult(
        strategy=spec.name,
        miou=edge.trace.mean,
        miou_vs_teacher=edge.teacher_trace.mean,
        teacher_miou=teacher_vs_truth.mean,
        uplink_kbps=edge.bandwidth.uplink_kbps(duration),
        downlink_kbps=edge.bandwidth.downlink_kbps(duration),
        duration_s=duration,
        wall_s=time.perf_counter() - began,
        updates_sent=len(packet_sizes),
        updates_applied=edge.updates_applied,
        mean_packet_bytes=float(np.mean(packet_sizes)) if packet_sizes else 0.0,
        mean_shadow_packet_bytes=float(np.mean(distiller.shadow_sizes)) if distiller.shadow_sizes else 0.0,
        skipped_rounds=session.stats.skipped_rounds,
        rejected_packets=edge.rejected_packets,
        times_s=edge.trace.times_s,
        miou_trace=edge.trace.values,
        rate_history=session.stats.rate_history,
        period_history=session.stats.period_history,
    )


def default_truth(source: VideoSource, teacher_spec: str) -> str:
    """Exact labels for a synthetic video; for a real one, only the teacher's labels exist
    unless the user gives `--truth labels:DIR`."""
    return "oracle" if source.synthetic else teacher_spec


def _training_due(spec: StrategySpec, session: StreamSession, config: AmsConfig, now: float) -> bool:
    if spec.one_time:
        return now >= config.training.one_time_window_s
    return session.due(now)


def _train_once(session: StreamSession, config: AmsConfig, now: float):
    """The one-time baseline: as many iterations as the rounds it replaces would have run."""
    rounds = max(1, int(now / config.training.period_s))
    return session.distiller.train_once(session.window, config.training.iterations * rounds)


def run_in_worker(*args, **kwargs) -> StreamResult:
    """Entry point for worker processes: one torch thread each, so two strategies share 2 cores."""
    torch.set_num_threads(1)
    return simulate_stream(*args, **kwargs)
