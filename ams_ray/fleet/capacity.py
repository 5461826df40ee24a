"""Demand held against capacity while a run goes, and why a run that helped no one failed.

Pure functions of plain numbers (the teacher replica's and the trainer hosts' own counts),
so the driver can ask early, in the first minutes of a run, whether what the streams ask
fits what the server has, and say what speed or layout would fit; and so that the verdict
on a finished run is tested without Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FIT_MARGIN = 0.8  # a suggested speed leaves this fraction of capacity in use, not all of it


@dataclass(frozen=True)
class TeacherLoad:
    """One teacher replica's counts over an interval (differences of two `load()` replies)."""

    training_frames_asked: int  # arrived at the teacher for training
    scoring_frames_asked: int
    frames_served: int
    scoring_shed: int
    busy_s: float
    elapsed_s: float

    @classmethod
    def between(cls, before: dict, after: dict) -> "TeacherLoad":
        return cls(after["arrived"]["training"] - before["arrived"]["training"],
                   after["arrived"]["scoring"] - before["arrived"]["scoring"],
                   sum(after["served"].values()) - sum(before["served"].values()),
                   after["shed"] - before["shed"], after["busy_s"] - before["busy_s"],
                   after["uptime_s"] - before["uptime_s"])

    @property
    def capacity_fps(self) -> float:
        """Frames per second it labels while busy: what one replica can do flat out."""
        return self.frames_served / self.busy_s if self.busy_s > 0 else math.nan

    @property
    def training_demand_fps(self) -> float:
        return self.training_frames_asked / self.elapsed_s if self.elapsed_s > 0 else math.nan

    @property
    def demand_fps(self) -> float:
        return (self.training_frames_asked + self.scoring_frames_asked) / self.elapsed_s if self.elapsed_s > 0 \
            else math.nan


@dataclass(frozen=True)
class TrainerLoad:
    """The trainer hosts' counts over an interval, summed over hosts."""

    rounds: int
    train_cpu_s: float  # the training threads' CPU time for those rounds
    train_s: float  # their wall time
    slots: int  # training steps the hosts' accelerators run at once (cores of CPU nodes, one per GPU)
    shed_chunks: int
    rate_cuts: int


@dataclass(frozen=True)
class RunShape:
    streams: int
    speed: float
    period_s: float  # video seconds between a stream's rounds (ATR may stretch it: this is the most asked)
    teacher_replicas: int


def teacher_warnings(load: TeacherLoad, shape: RunShape) -> list[str]:
    """What the teacher cannot keep up with, and the speed or replicas that would fit."""
    capacity, training = load.capacity_fps, load.training_demand_fps
    if math.isnan(capacity) or math.isnan(training):
        return []
    warnings = []
    if training > capacity:
        speed = shape.speed * FIT_MARGIN * capacity / training
        replicas = math.ceil(shape.teacher_replicas * training / (FIT_MARGIN * capacity))
        warnings.append(f"teacher over capacity: the streams ask {training:.2f} training frames/s and one replica "
                        f"labels {capacity:.2f} frames/s flat out; chunks wait and their devices are told to sample "
                        f"less. Fits at --speed {speed:.3g}, or with --teacher-replicas {replicas} on free cores "
                        f"(or --teacher-gpus 1)")
    elif load.scoring_shed:
        share = load.scoring_shed / max(1, load.scoring_frames_asked)
        warnings.append(f"teacher saturated: {load.scoring_shed} scoring frames ({share:.0%}) were shed to keep "
                        f"training labels flowing (mIoU against the teacher rests on fewer frames); training "
                        f"frames fit ({training:.2f} asked, {capacity:.2f} frames/s possible)")
    return warnings


def trainer_warnings(load: TrainerLoad, shape: RunShape) -> list[str]:
    """Whether the rounds the streams make due fit the training slots: in CPU time, and in the
    wall time rounds take here (the teacher and emulated devices may share the trainers' cores,
    so a round's thread waits for one)."""
    if load.rounds == 0 or load.slots == 0 or load.train_cpu_s <= 0:
        return []
    cpu_per_round, wall_per_round = load.train_cpu_s / load.rounds, load.train_s / load.rounds
    rounds_per_s = shape.streams * shape.speed / shape.period_s
    demand = rounds_per_s * cpu_per_round  # busy slots needed
    warnings = []
    if demand > load.slots:
        speed = shape.speed * FIT_MARGIN * load.slots / demand
        streams = max(1, math.floor(shape.streams * FIT_MARGIN * load.slots / demand))
        warnings.append(f"trainers over capacity: {shape.streams} streams make {rounds_per_s:.2f} rounds due per "
                        f"second at {cpu_per_round:.2f} CPU-s each, {demand:.1f} training slots busy against "
                        f"{load.slots}; updates will arrive late. Fits at --speed {speed:.3g}, or with --clients "
                        f"{streams}, or on more cores or GPUs")
    wall_demand = rounds_per_s * wall_per_round  # training threads busy, at the wall time rounds take here
    if demand <= load.slots < wall_demand:
        share = cpu_per_round / wall_per_round
        speed = shape.speed * FIT_MARGIN * load.slots / wall_demand
        warnings.append(f"trainers short of CPU: a round takes {wall_per_round:.1f} s of wall time for "
                        f"{cpu_per_round:.2f} CPU-s (its thread gets a core {share:.0%} of the time; the teacher "
                        f"and the emulated devices share the cores), so {wall_demand:.1f} training threads would "
                        f"have to run at once against {load.slots}; updates arrive late. Fits at --speed "
                        f"{speed:.3g}, or with more cores, or with the teacher on its own node or a GPU")
    return warnings


def rounds_capacity(round_seconds: list[float]) -> float:
    """Rounds per second a set of hosts sustains (C), each host training one round at a time:
    the sum of each host's rate. Round times measured with the hosts training at once already
    include their sharing of the cores."""
    rates = [1.0 / s for s in round_seconds if s > 0 and math.isfinite(s)]
    return sum(rates) if rates else math.nan


def plan_warnings(shape: RunShape, capacity: float, hosts: int, cores: int) -> list[str]:
    """Said before the streams start: a plan asking more rounds than the hosts sustain, or
    more training hosts than cores, with the speed or layout that would fit."""
    warnings = []
    demand = shape.streams * shape.speed / shape.period_s
    if math.isfinite(capacity) and demand > capacity:
        speed = shape.speed * FIT_MARGIN * capacity / demand
        streams = max(1, math.floor(shape.streams * FIT_MARGIN * capacity / demand))
        warnings.append(f"the plan asks more training than the hosts sustain: {shape.streams} streams at "
                        f"{shape.speed:g}x make {demand:.2f} rounds due per second, and {hosts} hosts train "
                        f"{capacity:.2f} rounds/s (calibrated before the streams started; the teacher and devices "
                        f"will take some of it). Past capacity the scheduler decides who is helped (--scheduler "
                        f"gain trains the rounds worth most first). Fits at --speed {speed:.3g}, or with --clients "
                        f"{streams}, or on more cores or GPUs")
    if cores and hosts > cores:
        warnings.append(f"{hosts} training hosts on {cores} cores: each host trains on one thread, so they take "
                        f"turns on the cores and each pays for torch; --streams-per-trainer "
                        f"{math.ceil(shape.streams / cores)} makes one host per core")
    return warnings


def no_update_reason(summary: dict) -> str | None:
    """Why no stream got an update, when none did (None otherwise): a run that helped no
    device failed, whatever else completed."""
    completed = summary.get("completed", 0)
    if not completed or summary.get("streams_without_update", 0) < completed:
        return None
    causes = []
    if summary.get("rounds", 0) == 0:
        labelled = summary.get("teacher_training_frames", 0)
        causes.append("no training round ran" + (
            f": the teacher labelled no training frame ({summary.get('unlabelled_chunks', 0)} chunks unlabelled, "
            f"{summary.get('shed_chunks', 0)} shed)" if not labelled else
            f" (the teacher labelled {labelled} training frames; a stream's first round needs a full training "
            "period of labelled video)"))
    else:
        causes.append(f"{summary['rounds']} rounds trained, but no packet was applied "
                      f"({summary.get('rejected_packets', 0)} refused, {summary.get('packets_missed', 0)} missed, "
                      f"{summary.get('poll_failures', 0)} failed polls)")
    causes += summary.get("capacity_warnings", [])
    return f"no stream applied an update ({completed} completed): " + "; ".join(causes)
