"""What goes where in a multi-stream run, decided before anything starts (pure: no Ray).

`plan_fleet` turns a `FleetConfig` and the cluster's node resources into a `FleetPlan`:
one `StreamPlan` per device (its id and its video, as data), the resources each actor
asks for, what the whole run demands of the cluster, and the run's deadline. The Ray side
(`actors/fleet.py`) launches, watches and collects from that plan.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ams_ray.config import AmsConfig
from ams_ray.datasets import SyntheticSpec, VideoFile, default_cache_dir
from ams_ray.faults import Fault
from ams_ray.placement import Demand, trainer_resources

StreamVideo = SyntheticSpec | VideoFile


@dataclass
class FleetConfig:
    clients: int = 4
    duration_s: float = 300.0
    speed: float = 1.0
    teacher: str = "oracle"
    student: str = "tiny"
    strategy: str = "ams_gg10"
    scheduler: str = "round_robin"
    profile: str = "cpu"
    seed_base: int = 0
    videos: list[Path] | None = None  # real videos, one per stream (the embedded default when None)
    gpus_per_trainer: float | None = None
    cpus_per_trainer: float | None = None
    cpus_per_edge: float = 0.01
    teacher_replicas: int = 1
    teacher_batch: int = 8
    teacher_wait_s: float = 0.02
    teacher_cpus: float = 0.5
    teacher_gpus: float = 0.0
    ready_timeout_s: float = 600.0  # actors that are placeable but slow to start (torch imports) are waited for
    cache_dir: Path | None = None  # each node's own video cache (default: ~/.cache/ams-ray there)
    checkpoint_store: str | None = None  # directory or fsspec URL every node reaches; default: local cache
    checkpoint_window_s: float | None = None  # newest seconds of the labelled window kept (None: all)
    trainer_restarts: int = 3
    turn_lease_s: float = 120.0
    call_timeout_s: float = 120.0  # any single remote call a stream waits on
    deadline_s: float | None = None  # default: see FleetPlan.deadline_s
    faults: list[Fault] = field(default_factory=list)
    # Ray's workers push metrics to the node's exporter every few seconds (10 s by default):
    # keep the actors this long after the run so the final counts reach Prometheus.
    metrics_flush_s: float = 0.0


@dataclass(frozen=True)
class TrainerSettings:
    """What a trainer process needs besides its stream, the same for every stream of a run."""

    checkpoint_url: str
    checkpoint_window_s: float | None
    call_timeout_s: float  # a teacher request, a training turn, the coordinator's answer


@dataclass(frozen=True)
class StreamPlan:
    stream_id: str
    video: StreamVideo

    @property
    def label_key(self) -> str | None:
        """How the teacher names this stream's video: a synthetic key, or None (label pixels)."""
        return self.video.key if isinstance(self.video, SyntheticSpec) else None


@dataclass(frozen=True)
class FleetPlan:
    run_id: str
    streams: list[StreamPlan]
    trainer: dict[str, float]
    edge: dict[str, float]
    teacher: dict[str, float]
    demands: list[Demand]
    trainer_settings: TrainerSettings
    deadline_s: float  # wall seconds from the streams' start after which a stream still running has failed


def default_deadline_s(duration_s: float, speed: float) -> float:
    """Twice the run's wall time plus two minutes: slack for a loaded machine and restarts, yet an end."""
    return 2.0 * duration_s / speed + 120.0


def plan_fleet(config: FleetConfig, nodes: list[dict[str, float]], videos: list[VideoFile] | None = None) -> FleetPlan:
    """`nodes`: each alive node's resources. Where nodes carry the custom resources "server"
    and "edge", trainers and the teacher go to the first, edges to the second."""
    if config.clients < 1:
        raise ValueError(f"a fleet needs at least one client, got {config.clients}")
    if videos is not None and len(videos) != config.clients:
        raise ValueError(f"{len(videos)} videos for {config.clients} clients: give one video per client")
    ams = AmsConfig.for_profile(config.profile)
    server_role = "server" if any("server" in n for n in nodes) else None
    edge_role = "edge" if any("edge" in n for n in nodes) else None
    trainer_nodes = [n for n in nodes if server_role is None or server_role in n]
    cluster_gpus = sum(n.get("GPU", 0.0) for n in trainer_nodes)
    trainer_cpus = sum(n.get("CPU", 0.0) for n in trainer_nodes)
    edges_share = 0.0 if edge_role else config.cpus_per_edge * config.clients
    # Logical CPU shares only decide placement (each trainer trains on one thread): split
    # what the teacher and co-located edges leave on the trainer nodes, keeping a tenth spare.
    spare = trainer_cpus - config.teacher_cpus * config.teacher_replicas - edges_share
    cpus_per_trainer = config.cpus_per_trainer or min(1.0, max(0.001, round(0.9 * spare / config.clients, 3)))
    trainer = trainer_resources(cluster_gpus, config.clients, config.gpus_per_trainer, cpus_per_trainer, server_role)
    edge = {"CPU": config.cpus_per_edge, **({edge_role: 0.001} if edge_role else {})}
    teacher = {"CPU": config.teacher_cpus, "GPU": config.teacher_gpus, **({server_role: 0.001} if server_role else {})}
    teacher = {k: v for k, v in teacher.items() if v > 0}
    ids = [f"stream-{config.seed_base + i:03d}" for i in range(config.clients)]
    if videos is None:
        sources: list[StreamVideo] = [SyntheticSpec(config.seed_base + i, config.duration_s, ams.video.height,
                                                    ams.video.width) for i in range(config.clients)]
    else:
        sources = list(videos)
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    store = config.checkpoint_store or str(default_cache_dir() / "checkpoints")
    return FleetPlan(
        run_id=run_id,
        streams=[StreamPlan(sid, video) for sid, video in zip(ids, sources)],
        trainer=trainer,
        edge=edge,
        teacher=teacher,
        demands=[Demand("trainer", config.clients, trainer), Demand("edge", config.clients, edge),
                 Demand("teacher replica", config.teacher_replicas, teacher)],
        trainer_settings=TrainerSettings(f"{store.rstrip('/')}/{run_id}", config.checkpoint_window_s,
                                         config.call_timeout_s),
        deadline_s=config.deadline_s or default_deadline_s(config.duration_s, config.speed),
    )
