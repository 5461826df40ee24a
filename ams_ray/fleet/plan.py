"""What goes where in a multi-stream run, decided before anything starts (pure: no Ray).

`plan_fleet` turns a `FleetConfig` and the cluster's node resources into a `FleetPlan`:
one `StreamPlan` per device (its id, its video as data, the phase of its send schedule),
the trainer hosts and which streams each holds, the resources each actor asks for, what
the whole run demands of the cluster, and the run's deadline. The Ray side
(`serve/fleet.py`) launches, watches and collects from that plan.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ams_ray.config import AmsConfig
from ams_ray.data.datasets import SyntheticSpec, VideoFile, default_cache_dir
from ams_ray.fleet.faults import Fault
from ams_ray.fleet.placement import Demand, trainer_resources
from ams_ray.fleet.scene_mix import SceneMix
from ams_ray.service.trainer_settings import TrainerSettings

StreamVideo = SyntheticSpec | VideoFile


EDGE_HOST_CPUS = 0.2  # the most logical CPU one edge process asks for (see _edge_hosts)


@dataclass
class FleetConfig:
    clients: int = 4
    duration_s: float = 300.0
    speed: float = 1.0
    teacher: str = "oracle"
    student: str = "tiny"
    strategy: str = "ams_gg10"
    scheduler: str = "fifo"  # which due round trains first (`ams_ray.service.round_policy`)
    fairness_floor_periods: float = 4.0  # gain: no due round waits longer than this many training periods
    hibernate_gain: float = 4.0  # gain: a stream whose next round would win fewer mIoU points asks for none
    scene_mix: str | None = None  # e.g. "static:0.25,slow:0.5,fast:0.25" (`SceneMix`); None: every camera "mixed"
    profile: str = "cpu"
    seed_base: int = 0
    videos: list[Path] | None = None  # real videos, one per stream (the embedded default when None)
    truth: list[Path] | None = None  # label directories that score the real videos, one per video
    gpus_per_trainer: float | None = None  # given: one stream per trainer on that GPU fraction
    cpus_per_trainer: float | None = None
    streams_per_trainer: int | None = None  # default: see default_streams_per_trainer
    fused: bool | None = None  # fused training steps; default: on GPUs, off on CPUs (measured slower)
    fusion_window_s: float = 0.25  # rounds falling due this close together train as one fused step
    lockstep: bool = False  # every stream's send schedule in phase (the old behaviour); default: staggered
    cpus_per_edge: float = 0.01  # per emulated device
    devices_per_edge_host: int | None = None  # emulated devices per process; default: one process per edge core
    teacher_replicas: int = 1  # fixed, or the least when autoscaling
    teacher_max_replicas: int | None = None  # given: Serve autoscales between the two on ongoing requests
    teacher_batch: int = 8
    teacher_wait_s: float = 0.02
    teacher_cpus: float = 0.5
    teacher_gpus: float = 0.0
    teacher_eval_every: int = 4  # every k-th scored frame is also scored against the teacher's labels
    ready_timeout_s: float = 600.0  # actors that are placeable but slow to start (torch imports) are waited for
    cache_dir: Path | None = None  # each node's own video cache (default: ~/.cache/ams-ray there)
    checkpoint_store: str | None = None  # directory or fsspec URL every node reaches; default: local cache
    trainer_restarts: int = 3
    turn_lease_s: float = 120.0
    call_timeout_s: float = 120.0  # any single remote call a stream waits on (an upload, a poll, a turn)
    label_timeout_s: float = 300.0  # a chunk's labels (queued behind other streams' training frames)
    label_backlog_chunks: int = 4  # per stream, chunks waiting for labels before the next is shed
    drain_s: float = 120.0  # after its last upload, how long a device waits for its last packets
    capacity_check_s: float = 60.0  # wall seconds after the start when demand is first held against capacity
    deadline_s: float | None = None  # default: see FleetPlan.deadline_s
    faults: list[Fault] = field(default_factory=list)
    transport: str = "ray"  # "http": devices run the standalone client against the ingress (serve/ingress.py)
    ingress_port: int = 8000  # Serve's HTTP port on 127.0.0.1 (the ingress, with transport "http")
    # Ray's workers push metrics to the node's exporter every few seconds (10 s by default):
    # keep the actors this long after the run so the final counts reach Prometheus.
    metrics_flush_s: float = 0.0


@dataclass(frozen=True)
class StreamPlan:
    stream_id: str
    video: StreamVideo
    send_phase_s: float  # video time of the first upload; later ones follow every send period

    @property
    def label_key(self) -> str | None:
        """How the teacher names this stream's video: a synthetic key, or None (label pixels)."""
        return self.video.key if isinstance(self.video, SyntheticSpec) else None


@dataclass(frozen=True)
class HostPlan:
    """One trainer process and the streams it holds."""

    host_id: str
    stream_ids: tuple[str, ...]


@dataclass(frozen=True)
class EdgeHostPlan:
    """One process of emulated devices (`actors/edge_host.py`) and the streams it plays."""

    host_id: str
    stream_ids: tuple[str, ...]


@dataclass(frozen=True)
class FleetPlan:
    run_id: str
    streams: list[StreamPlan]
    hosts: list[HostPlan]
    edge_hosts: list[EdgeHostPlan]
    trainer: dict[str, float]  # per trainer host
    edge: dict[str, float]  # per edge host
    teacher: dict[str, float]
    demands: list[Demand]
    trainer_settings: TrainerSettings
    deadline_s: float  # wall seconds from the streams' start after which a stream still running has failed
    training_cores: int = 0  # cores the hosts train on (0 on GPUs, where the plan puts one host per GPU)


def default_deadline_s(duration_s: float, speed: float) -> float:
    """Twice the run's wall time plus two minutes: slack for a loaded machine and restarts, yet an end."""
    return 2.0 * duration_s / speed + 120.0


def default_streams_per_trainer(clients: int, cluster_gpus: float, trainer_cores: int) -> int:
    """One trainer host per GPU, or per CPU core where there is none.

    A host trains on one thread (CPU) or one CUDA context (GPU), so more hosts than cores
    or GPUs only add processes that take turns on the same device, each paying torch's
    import and memory; fewer would leave a core idle while rounds wait.
    """
    devices = int(cluster_gpus) if cluster_gpus >= 1 else max(1, trainer_cores)
    return max(1, math.ceil(clients / devices))


def default_devices_per_edge_host(clients: int, edge_cores: int) -> int:
    """One edge process per core: a process plays its devices on one event loop, so one per
    core uses them all, and fewer processes than that would only leave cores idle while each
    pays its ~95 MB. (Devices over HTTP run the standalone client, one per process.)"""
    return max(1, math.ceil(clients / max(1, edge_cores)))


def _edge_hosts(config: FleetConfig, nodes: list[dict[str, float]], edge_role: str | None) -> tuple[int, int, float]:
    """(devices per edge process, edge processes, logical CPUs each asks for). A process plays
    on one event loop, so it asks for its devices' share but never more than `EDGE_HOST_CPUS`:
    the request only places it, and 256 devices must still place on 2 cores."""
    if config.devices_per_edge_host is not None and config.devices_per_edge_host < 1:
        raise ValueError(f"devices per edge host must be at least 1, got {config.devices_per_edge_host}")
    if config.transport == "http" and (config.devices_per_edge_host or 1) > 1:
        raise ValueError("devices over HTTP run the standalone client, one per process: devices per edge host is 1")
    edge_cores = sum(int(n.get("CPU", 0.0)) for n in nodes if edge_role is None or edge_role in n)
    per_edge_host = 1 if config.transport == "http" else (
        config.devices_per_edge_host or default_devices_per_edge_host(config.clients, edge_cores))
    return (per_edge_host, math.ceil(config.clients / per_edge_host),
            round(min(config.cpus_per_edge * per_edge_host, EDGE_HOST_CPUS), 3))


def send_phases(count: int, period_s: float, seed: int, lockstep: bool) -> list[float]:
    """Each stream's first upload at a seeded random point of the send period, so chunks,
    teacher requests and training rounds of many streams spread over the period instead of
    all falling due at once; `lockstep` puts every stream at the period's end (as before)."""
    if lockstep:
        return [period_s] * count
    rng = random.Random(f"send-phase:{seed}")
    return [round(period_s * (1.0 - rng.random()), 3) for _ in range(count)]  # in (0, period]


def plan_fleet(config: FleetConfig, nodes: list[dict[str, float]], videos: list[VideoFile] | None = None) -> FleetPlan:
    """`nodes`: each alive node's resources. Where nodes carry the custom resources "server"
    and "edge", trainers and the teacher go to the first, edges to the second."""
    if config.clients < 1:
        raise ValueError(f"a fleet needs at least one client, got {config.clients}")
    if config.transport not in ("ray", "http"):
        raise ValueError(f"transport must be ray or http, got {config.transport!r}")
    if config.scene_mix and (videos is not None or config.videos):
        raise ValueError("--scene-mix shapes the embedded synthetic videos; real videos have the scenes they have")
    if videos is not None and len(videos) != config.clients:
        raise ValueError(f"{len(videos)} videos for {config.clients} clients: give one video per client")
    ams = AmsConfig.for_profile(config.profile)
    server_role = "server" if any("server" in n for n in nodes) else None
    edge_role = "edge" if any("edge" in n for n in nodes) else None
    trainer_nodes = [n for n in nodes if server_role is None or server_role in n]
    cluster_gpus = sum(n.get("GPU", 0.0) for n in trainer_nodes)
    trainer_cpus = sum(n.get("CPU", 0.0) for n in trainer_nodes)
    per_edge_host, edge_host_count, edge_cpus = _edge_hosts(config, nodes, edge_role)
    edges_share = 0.0 if edge_role else edge_cpus * edge_host_count
    # Logical CPU shares only decide placement (each trainer trains on one thread): split
    # what the teacher and co-located edges leave on the trainer nodes, keeping a tenth spare.
    trainer_gpus = 0.0 if config.gpus_per_trainer == 0 else cluster_gpus  # 0: told to train on CPUs
    per_host = config.streams_per_trainer or (1 if config.gpus_per_trainer else default_streams_per_trainer(
        config.clients, trainer_gpus, sum(int(n.get("CPU", 0.0)) for n in trainer_nodes)))
    if per_host < 1:
        raise ValueError(f"streams per trainer must be at least 1, got {per_host}")
    host_count = math.ceil(config.clients / per_host)
    teacher_replicas = config.teacher_max_replicas or config.teacher_replicas  # room for the most
    if teacher_replicas < config.teacher_replicas:
        raise ValueError(f"teacher_max_replicas {teacher_replicas} is below teacher_replicas {config.teacher_replicas}")
    spare = trainer_cpus - config.teacher_cpus * teacher_replicas - edges_share
    cpus_per_trainer = config.cpus_per_trainer or min(1.0, max(0.001, round(0.9 * spare / host_count, 3)))
    trainer = trainer_resources(cluster_gpus, host_count, config.gpus_per_trainer, cpus_per_trainer, server_role)
    edge = {"CPU": edge_cpus, **({edge_role: 0.001} if edge_role else {})}
    teacher = {"CPU": config.teacher_cpus, "GPU": config.teacher_gpus, **({server_role: 0.001} if server_role else {})}
    teacher = {k: v for k, v in teacher.items() if v > 0}
    ids = [f"stream-{config.seed_base + i:03d}" for i in range(config.clients)]
    if videos is None:
        kinds = (SceneMix.parse(config.scene_mix).kinds(config.clients, config.seed_base) if config.scene_mix
                 else ["mixed"] * config.clients)
        sources: list[StreamVideo] = [SyntheticSpec(config.seed_base + i, config.duration_s, ams.video.height,
                                                    ams.video.width, kind) for i, kind in enumerate(kinds)]
    else:
        sources = list(videos)
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    store = config.checkpoint_store or str(default_cache_dir() / "checkpoints")
    phases = send_phases(config.clients, ams.training.send_period_s, config.seed_base, config.lockstep)
    fused = config.fused if config.fused is not None else "GPU" in trainer
    return FleetPlan(
        run_id=run_id,
        streams=[StreamPlan(sid, video, phase) for sid, video, phase in zip(ids, sources, phases)],
        hosts=[HostPlan(f"trainer-{h:02d}", tuple(ids[h * per_host:(h + 1) * per_host])) for h in range(host_count)],
        edge_hosts=[EdgeHostPlan(f"edge-{h:02d}", tuple(ids[h * per_edge_host:(h + 1) * per_edge_host]))
                    for h in range(edge_host_count)],
        trainer=trainer,
        edge=edge,
        teacher=teacher,
        demands=[Demand("trainer host", host_count, trainer), Demand("edge host", edge_host_count, edge),
                 Demand("teacher replica", teacher_replicas, teacher)],
        trainer_settings=TrainerSettings(f"{store.rstrip('/')}/{run_id}",
                                         config.call_timeout_s, fused, config.fusion_window_s,
                                         label_timeout_s=config.label_timeout_s,
                                         label_backlog_chunks=config.label_backlog_chunks,
                                         scheduler=config.scheduler,
                                         fairness_floor_periods=config.fairness_floor_periods,
                                         hibernate_gain=config.hibernate_gain),
        deadline_s=config.deadline_s or default_deadline_s(config.duration_s, config.speed),
        training_cores=0 if "GPU" in trainer else int(trainer_cpus),
    )
