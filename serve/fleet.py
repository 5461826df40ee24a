"""Run N streams on a Ray cluster: plan, launch, watch, collect, and always tear down.

Launching and tearing down are `serve/fleet_launch.py`; here the streams run and report.

`run_fleet` is what `benchmarks/multi_client.py` and the tests call; it returns raw
per-stream reports and leaves the summarising and plotting to the caller. The plan is
pure (`ams_ray.fleet.plan`); everything here moves handles and bytes and bounds every wait:
a stream that has not finished by the plan's deadline is reported failed, not waited on.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import psutil
import ray
from ray import serve
from ray.exceptions import RayError

from actors.cluster import alive_node_resources, ensure_fits
from ams_ray.config import AmsConfig
from ams_ray.data.datasets import read_videos
from ams_ray.fleet.capacity import RunShape, plan_warnings
from ams_ray.fleet.faults import Fault
from ams_ray.fleet.plan import FleetConfig, plan_fleet
from ams_ray.models.student_spec import StudentSpec
from serve.capacity_watch import CapacityWatch
from serve.fault_injection import inject
from serve.fleet_launch import INGRESS_APP, Launched, SetupCallback, calibrate, launch, reason, settle, teardown

CHECK_TIMEOUT_S = 10.0  # a capacity check's calls: a busy part is asked again at the next check

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]


@dataclass
class FleetResult:
    edges: list[dict]
    trainers: list[dict]  # one per stream
    hosts: list[dict]  # one per trainer process
    failed: dict[str, str]
    coordinator: dict
    wall_s: float
    started_wall: float  # when the streams started (time.time())
    setup_s: dict[str, float]
    faults: list[tuple[Fault, float]] = field(default_factory=list)
    node_memory: list[dict] = field(default_factory=list)  # NodeMemory.report() of every node
    server_cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds over the run: teacher, trainers
    machine_cpu_s: float = 0.0  # busy CPU seconds of the driver's machine over the run (every process on it)
    teacher_load: dict = field(default_factory=dict)  # one replica over the run: asked, served, shed, capacity
    capacity_warnings: list[str] = field(default_factory=list)  # said before and while the run went
    calibrated_rounds_per_s: float = math.nan  # C: what the hosts trained, all at once, before the streams started


def run_fleet(config: FleetConfig, on_progress: ProgressCallback | None = None,
              on_started: Callable[[dict, dict], None] | None = None,
              on_setup: SetupCallback | None = None, on_warning: SetupCallback | None = None) -> FleetResult:
    """Run every stream to the end of its video (or the deadline).

    `on_setup(line)` hears how start-up goes (actors running so far, phase by phase);
    `on_warning(line)` hears that demand exceeds capacity, once per kind, from the first
    check (`capacity_check_s` after the start) on;
    `on_progress(frames_done, streams_running)` is called about once a second;
    `on_started(edges, trainers)` once the streams run, with their actor handles by stream id
    (where a caller attaches its own probes). Faults in `config.faults` are injected here.
    """
    videos = read_videos(config.videos, config.truth) if config.videos else None
    student = StudentSpec.read(config.student)  # weights travel as bytes, like videos
    plan = plan_fleet(config, alive_node_resources(), videos)
    ensure_fits(plan.demands)
    period_s = AmsConfig.for_profile(config.profile).training.period_s
    launched = Launched(plan)
    try:
        launch(config, launched, student, on_setup or log.info)
        shape = RunShape(len(launched.plan.streams), config.speed, period_s, config.teacher_replicas)
        capacity = calibrate(launched, config.ready_timeout_s)
        early = plan_warnings(shape, capacity, len(plan.hosts), plan.training_cores)
        for line in early:
            (on_warning or log.warning)(line)
        began = time.time()
        cpu_before = _server_cpu(launched, config.call_timeout_s)
        machine_before = _busy_cpu_s()
        watch = CapacityWatch(launched.teacher, launched.hosts, shape, config.capacity_check_s, CHECK_TIMEOUT_S,
                              on_warning or log.warning)
        runs = _start(launched)
        if on_started:
            on_started(dict(launched.edges), dict(launched.trainers))
        reports, fired = _watch(config, launched, runs, began, on_progress, watch)
        wall = time.time() - began
        teacher_load = watch.run_load()
        cpu_after = _server_cpu(launched, config.call_timeout_s)
        machine = _busy_cpu_s() - machine_before
        hosts = _collect_hosts(launched, config.call_timeout_s)
        coordinator = ray.get(launched.coordinator.summary.remote(), timeout=config.call_timeout_s)
        memory = _collect_memory(launched, config.call_timeout_s)
        time.sleep(config.metrics_flush_s)
        return FleetResult(reports, [s for h in hosts for s in h["streams"]], hosts, launched.failed, coordinator,
                           wall, began, launched.setup_s, fired, memory,
                           {k: cpu_after[k] - cpu_before[k] for k in cpu_after if k in cpu_before}, machine,
                           teacher_load, early + watch.warnings, capacity)
    finally:
        teardown(launched)


def _start(launched: Launched) -> dict:
    return {edge.run.remote(sid): sid for sid, edge in launched.edges.items() if sid not in launched.failed}


def _watch(config: FleetConfig, launched: Launched, runs: dict, began: float,
           on_progress: ProgressCallback | None, capacity: CapacityWatch) -> tuple[list[dict], list[tuple[Fault, float]]]:
    """Wait for the streams until the deadline, injecting due faults and checking capacity."""
    faults = sorted(config.faults, key=lambda f: f.at_s)
    fired: list[tuple[Fault, float]] = []
    reports: list[dict] = []
    pending = list(runs)
    last_progress: dict[str, int] = {}
    deadline = began + launched.plan.deadline_s
    while pending and time.time() < deadline:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        for ref in done:
            _collect_edge(ref, runs[ref], reports, launched.failed)
        while faults and time.time() - began >= faults[0].at_s:
            fault = faults.pop(0)
            inject(fault, launched.edges, launched.trainers)
            fired.append((fault, time.time()))
        if on_progress:
            on_progress(_frames_done(launched, pending, runs, reports, last_progress), len(pending))
        if pending:
            capacity.poll()
    for ref in pending:
        launched.failed[runs[ref]] = (f"still running at the run's deadline ({launched.plan.deadline_s:.0f} s "
                                      "after the start): stopped and reported, not waited on")
    return reports, fired


def _frames_done(launched: Launched, pending: list, runs: dict, reports: list[dict], last: dict[str, int]) -> int:
    """Frames played so far; an edge too busy to answer within 5 s counts what it said last."""
    running = {runs[ref] for ref in pending}
    by_process: dict = {}
    for sid in running:
        by_process.setdefault(launched.edges[sid], []).append(sid)
    progress, _, _ = settle({actor.progress.remote(sids): i for i, (actor, sids) in enumerate(by_process.items())}, 5.0)
    for frames in progress.values():
        last.update(frames)
    return sum(r["frames"] for r in reports) + sum(v for sid, v in last.items() if sid in running)


def _collect_edge(ref, stream_id: str, reports: list[dict], failed: dict[str, str]) -> None:
    try:
        report = ray.get(ref)
    except RayError as exc:
        failed[stream_id] = reason(exc)
        return
    reports.append(report)


def _server_cpu(launched: Launched, timeout_s: float) -> dict[str, float]:
    """CPU seconds so far of the teacher (one replica's), of all trainer hosts and of the ingress
    (transport "http"; its decoder process included); a part that
    does not answer is left out, so a difference over the run is taken only where both ends are."""
    seconds, _, _ = settle({host.cpu_seconds.remote(): host_id for host_id, host in launched.hosts.items()},
                            timeout_s)
    cpu = {"trainers": sum(seconds.values())} if len(seconds) == len(launched.hosts) else {}
    handles = {"teacher": launched.teacher}
    if launched.ingress_deployed:
        handles["ingress"] = serve.get_app_handle(INGRESS_APP)
    for part, handle in handles.items():
        response = handle.process.remote()
        try:
            cpu[part] = response.result(timeout_s=timeout_s)["cpu_seconds"]
        except Exception:  # noqa: BLE001 - a replica being replaced or too busy: its share is not reported
            response.cancel()  # else Serve's router keeps trying to place it
    return cpu


def _busy_cpu_s() -> float:
    """Busy CPU seconds of this machine so far, all cores (psutil: total minus idle and iowait)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _collect_hosts(launched: Launched, timeout_s: float) -> list[dict]:
    """Every host's report; the streams of a host that cannot report are failed with why."""
    stats, errors, late = settle({host.stats.remote(): host_id for host_id, host in launched.hosts.items()},
                                  timeout_s)
    errors.update({host_id: f"did not report within {timeout_s:g} s" for host_id in late})
    for host in (h for h in launched.plan.hosts if h.host_id in errors):
        for sid in host.stream_ids:
            launched.failed.setdefault(sid, f"trainer host {host.host_id}: {errors[host.host_id]}")
    return list(stats.values())


def _collect_memory(launched: Launched, timeout_s: float) -> list[dict]:
    """Each node's memory samples; a node whose probe is gone is left out (and said)."""
    reports, errors, late = settle({p.report.remote(): k for k, p in enumerate(launched.memory_probes)}, timeout_s)
    if errors or late:
        log.error("%d node memory probes did not report: %s", len(errors) + len(late), list(errors.values()))
    return list(reports.values())


