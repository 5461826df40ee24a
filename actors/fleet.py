"""Run N streams on a Ray cluster: plan, launch, watch, collect, and always tear down.

`run_fleet` is what `benchmarks/multi_client.py` and the tests call; it returns raw
per-stream reports and leaves the summarising and plotting to the caller. The plan is
pure (`ams_ray.fleet_plan`); everything here moves handles and bytes and bounds every wait:
a stream that has not finished by the plan's deadline is reported failed, not waited on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import psutil
import ray
from ray import serve
from ray.exceptions import RayError

from actors.cluster import alive_node_resources, ensure_fits, ray_options
from actors.coordinator import Coordinator
from actors.edge import EdgeStream
from actors.fault_injection import inject
from actors.trainer import StreamTrainer
from ams_ray.config import AmsConfig
from ams_ray.datasets import VideoFile
from ams_ray.faults import Fault
from ams_ray.fleet_plan import FleetConfig, FleetPlan, plan_fleet
from ams_ray.placement import PlacementError
from serve.teacher import APP_NAME, teacher_app

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]


@dataclass
class FleetResult:
    edges: list[dict]
    trainers: list[dict]
    failed: dict[str, str]
    coordinator: dict
    wall_s: float
    setup_s: dict[str, float]
    faults: list[tuple[Fault, float]] = field(default_factory=list)
    memory_samples_gib: list[float] = field(default_factory=list)


@dataclass
class Launched:
    """Everything a run started, so teardown can stop it whatever happened."""

    plan: FleetPlan
    coordinator: object = None
    trainers: dict = field(default_factory=dict)
    edges: dict = field(default_factory=dict)
    teacher_deployed: bool = False
    failed: dict[str, str] = field(default_factory=dict)
    setup_s: dict[str, float] = field(default_factory=dict)


def _sample_memory_gib() -> float:
    """Memory in use on this machine (total - available), GiB."""
    memory = psutil.virtual_memory()
    return (memory.total - memory.available) / 2**30


def run_fleet(config: FleetConfig, on_progress: ProgressCallback | None = None,
              on_started: Callable[[dict, dict], None] | None = None) -> FleetResult:
    """Run every stream to the end of its video (or the deadline).

    `on_progress(frames_done, streams_running)` is called about once a second;
    `on_started(edges, trainers)` once the streams run, with their actor handles by stream id
    (where a caller attaches its own probes). Faults in `config.faults` are injected here.
    """
    videos = [VideoFile.read(p) for p in config.videos] if config.videos else None
    plan = plan_fleet(config, alive_node_resources(), videos)
    ensure_fits(plan.demands)
    launched = Launched(plan)
    try:
        _launch(config, launched)
        began = time.time()
        runs = _start(launched)
        if on_started:
            on_started(dict(launched.edges), dict(launched.trainers))
        reports, fired, memory = _watch(config, launched, runs, began, on_progress)
        wall = time.time() - began
        trainer_stats = _collect_trainers(launched, config.call_timeout_s)
        coordinator = ray.get(launched.coordinator.summary.remote(), timeout=config.call_timeout_s)
        time.sleep(config.metrics_flush_s)
        return FleetResult(reports, trainer_stats, launched.failed, coordinator, wall, launched.setup_s, fired,
                           memory)
    finally:
        _teardown(launched)


def _launch(config: FleetConfig, launched: Launched) -> None:
    """Teacher, coordinator, trainers, edges; each phase timed into `launched.setup_s`."""
    plan, ams = launched.plan, AmsConfig.for_profile(config.profile)
    phase = time.time()
    serve.start(http_options={"host": "127.0.0.1"})
    launched.teacher_deployed = True
    cpus, gpus = plan.teacher.get("CPU", 0.0), plan.teacher.get("GPU", 0.0)
    custom = {k: v for k, v in plan.teacher.items() if k not in ("CPU", "GPU")}
    handle = serve.run(teacher_app(config.teacher, config.teacher_replicas, config.teacher_batch,
                                   config.teacher_wait_s, cpus, gpus, custom), name=APP_NAME, route_prefix=None)
    num_classes = handle.num_classes.remote(plan.streams[0].label_key).result(timeout_s=config.ready_timeout_s)
    launched.setup_s["teacher"] = time.time() - phase

    phase = time.time()
    launched.coordinator = Coordinator.remote(config.scheduler, config.turn_lease_s)
    config_json = ams.model_dump_json()
    options = {**ray_options(plan.trainer), "max_restarts": config.trainer_restarts}
    for stream in plan.streams:
        launched.trainers[stream.stream_id] = StreamTrainer.options(**options).remote(
            stream.stream_id, stream.label_key, config.student, num_classes, config_json, config.strategy, handle,
            launched.coordinator, plan.trainer_settings)
    _wait_ready(launched.trainers, config, "trainers", plan.trainer)
    bundle = ray.get(next(iter(launched.trainers.values())).edge_bundle.remote(), timeout=config.call_timeout_s)
    launched.setup_s["trainers"] = time.time() - phase

    phase = time.time()
    bundle_ref = ray.put(bundle)  # one copy in the object store for every edge
    cache_dir = str(config.cache_dir) if config.cache_dir else None
    for stream in plan.streams:
        launched.edges[stream.stream_id] = EdgeStream.options(**ray_options(plan.edge)).remote(
            stream.stream_id, stream.video, config_json, config.speed, config.duration_s,
            launched.trainers[stream.stream_id], bundle_ref, config.call_timeout_s, cache_dir)
    _wait_ready(launched.edges, config, "edges", plan.edge)
    launched.setup_s["edges"] = time.time() - phase

    phase = time.time()
    _prepare_videos(launched, config.ready_timeout_s)
    launched.setup_s["videos"] = time.time() - phase


def _prepare_videos(launched: Launched, timeout_s: float) -> None:
    """Each edge readies its own video on its own node; a bad video fails its stream alone."""
    refs = {edge.prepare.remote(): sid for sid, edge in launched.edges.items()}
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    for ref in ready:
        try:
            ray.get(ref)
        except RayError as exc:
            launched.failed[refs[ref]] = _reason(exc)
    for ref in pending:
        launched.failed[refs[ref]] = f"video not ready within {timeout_s:g} s"
    for sid in launched.failed:
        log.error("stream %s failed before it started: %s", sid, launched.failed[sid])


def _start(launched: Launched) -> dict:
    return {edge.run.remote(): sid for sid, edge in launched.edges.items() if sid not in launched.failed}


def _watch(config: FleetConfig, launched: Launched, runs: dict, began: float,
           on_progress: ProgressCallback | None) -> tuple[list[dict], list[tuple[Fault, float]], list[float]]:
    """Wait for the streams until the deadline, injecting due faults and sampling memory."""
    faults = sorted(config.faults, key=lambda f: f.at_s)
    fired: list[tuple[Fault, float]] = []
    memory = [_sample_memory_gib()]
    reports: list[dict] = []
    pending = list(runs)
    deadline = began + launched.plan.deadline_s
    while pending and time.time() < deadline:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        for ref in done:
            _collect_edge(ref, runs[ref], reports, launched.failed)
        while faults and time.time() - began >= faults[0].at_s:
            fault = faults.pop(0)
            inject(fault, launched.edges, launched.trainers)
            fired.append((fault, time.time()))
        memory.append(_sample_memory_gib())
        if on_progress:
            on_progress(_frames_done(launched, pending, runs, reports), len(pending))
    for ref in pending:
        launched.failed[runs[ref]] = (f"still running at the run's deadline ({launched.plan.deadline_s:.0f} s "
                                      "after the start): stopped and reported, not waited on")
    return reports, fired, memory


def _frames_done(launched: Launched, pending: list, runs: dict, reports: list[dict]) -> int:
    refs = [launched.edges[runs[ref]].progress.remote() for ref in pending]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=5.0)
    done = sum(r["frames"] for r in reports)
    for ref in ready:
        try:
            done += ray.get(ref)
        except RayError:
            pass  # a dead edge has no progress; its run reports why
    return done


def _collect_edge(ref, stream_id: str, reports: list[dict], failed: dict[str, str]) -> None:
    try:
        report = ray.get(ref)
    except RayError as exc:
        failed[stream_id] = _reason(exc)
        return
    reports.append(report)


def _collect_trainers(launched: Launched, timeout_s: float) -> list[dict]:
    refs = {trainer.stats.remote(): sid for sid, trainer in launched.trainers.items()}
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    stats = []
    for ref in ready:
        try:
            stats.append(ray.get(ref))
        except RayError as exc:
            launched.failed.setdefault(refs[ref], f"trainer lost: {_reason(exc)}")
    for ref in pending:
        launched.failed.setdefault(refs[ref], f"trainer did not report within {timeout_s:g} s")
    return stats


def _teardown(launched: Launched) -> None:
    """Stop everything the run started; runs on success, error and Ctrl-C alike."""
    for actor in [*launched.edges.values(), *launched.trainers.values(), launched.coordinator]:
        if actor is not None:
            try:
                ray.kill(actor)
            except RayError:
                pass  # already gone
    if launched.teacher_deployed:
        try:
            serve.delete(APP_NAME)
        except Exception as exc:  # noqa: BLE001 - teardown goes on; say what was left behind
            log.error("could not delete the Serve app %s: %s", APP_NAME, exc)


def _wait_ready(actors: dict, config: FleetConfig, role: str, resources: dict[str, float]) -> None:
    """Wait for actors the placement check said fit; a constructor error surfaces at once."""
    refs = {actor.ready.remote(): sid for sid, actor in actors.items()}
    pending = list(refs)
    deadline = time.time() + config.ready_timeout_s
    while pending and time.time() < deadline:
        ready, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        for ref in ready:
            ray.get(ref)  # re-raises a constructor failure with its own message
    if pending:
        raise PlacementError(
            f"{len(pending)} of {len(actors)} {role} (each {resources}) were not running within "
            f"{config.ready_timeout_s:g} s; the cluster has {alive_node_resources()}"
        )


def _reason(exc: BaseException) -> str:
    """The last line of a Ray error: the remote exception's own message, under its traceback."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]
