"""Start a fleet and stop it: what `serve/fleet.py` runs its streams on.

From a plan (`ams_ray.fleet.plan`): memory probes, the teacher on Serve, the coordinator,
trainer hosts and edge processes (started together; slow is waited for, visibly, and a
constructor that raises ends the wait with its own error), each device's model and video,
a calibration round on every host, and, for devices over HTTP, the ingress. `Launched`
keeps every handle, so `teardown` stops all of it whatever happened.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import ray
from ray import serve
from ray.exceptions import RayError

from actors.cluster import alive_node_resources, ray_options
from actors.coordinator import start_coordinator
from actors.edge_host import EdgeHost
from actors.http_device import HttpDeviceActor
from actors.node_memory import start_probes
from actors.stream_directory import StreamDirectory
from actors.trainer import TrainerHost
from ams_ray.config import AmsConfig
from ams_ray.fleet.capacity import rounds_capacity
from ams_ray.fleet.placement import PlacementError
from ams_ray.fleet.plan import FleetConfig, FleetPlan
from ams_ray.models.student_spec import StudentSpec
from ams_ray.service.device_registry import DeviceRegistry
from ams_ray.service.host_pool import ScaleRange
from ams_ray.service.settings import ServiceSettings
from serve.ingress import DeviceIngress
from serve.teacher import APP_NAME, teacher_app

INGRESS_APP = "ams-ingress"
EDGE_EXIT_WAIT_S = 10.0  # at most, for the devices' processes to be gone before the hosts they poll are stopped

log = logging.getLogger(__name__)
SetupCallback = Callable[[str], None]


@dataclass
class Launched:
    """Everything a run started, so teardown can stop it whatever happened."""

    plan: FleetPlan
    coordinator: object = None
    hosts: dict = field(default_factory=dict)  # host id -> TrainerHost
    trainers: dict = field(default_factory=dict)  # stream id -> the TrainerHost holding it
    edge_hosts: dict = field(default_factory=dict)  # edge host id -> EdgeHost (HTTP: stream id -> HttpDeviceActor)
    edges: dict = field(default_factory=dict)  # stream id -> the actor playing its device
    memory_probes: list = field(default_factory=list)
    teacher_deployed: bool = False  # set before deploying: a deployment that fails half-way is deleted too
    teacher: object = None  # its handle
    calibrating: dict = field(default_factory=dict)  # TrainerHost.calibrate calls -> host id, while the edges prepare
    ingress_deployed: bool = False  # transport "http": the device ingress app
    failed: dict[str, str] = field(default_factory=dict)
    setup_s: dict[str, float] = field(default_factory=dict)


def launch(config: FleetConfig, launched: Launched, student: StudentSpec, say: SetupCallback) -> None:
    """Memory probes, teacher, then trainer hosts and edges together (their processes start
    in parallel), then each edge's model and video. `launched.setup_s`: seconds per phase,
    each from the moment the actors of that phase were asked for."""
    plan, ams = launched.plan, AmsConfig.for_profile(config.profile)
    launched.memory_probes = start_probes()
    began = phase = time.time()
    serve.start(http_options={"host": "127.0.0.1", "port": config.ingress_port})
    if config.transport == "http":
        _check_proxy_port(config.ingress_port)
    launched.teacher_deployed = True
    cpus, gpus = plan.teacher.get("CPU", 0.0), plan.teacher.get("GPU", 0.0)
    custom = {k: v for k, v in plan.teacher.items() if k not in ("CPU", "GPU")}
    handle = serve.run(teacher_app(config.teacher, config.teacher_replicas, config.teacher_batch,
                                   config.teacher_wait_s, cpus, gpus, custom, config.teacher_max_replicas),
                       name=APP_NAME, route_prefix=None)
    launched.teacher = handle
    num_classes = handle.num_classes.remote(plan.streams[0].label_key).result(timeout_s=config.ready_timeout_s)
    launched.setup_s["teacher"] = time.time() - phase
    say(f"teacher ready in {launched.setup_s['teacher']:.0f} s")

    coordinator = f"ams-coordinator-{plan.run_id}"
    launched.coordinator = start_coordinator(coordinator, config.scheduler, config.turn_lease_s)
    config_json = ams.model_dump_json()
    options = {**ray_options(plan.trainer), "max_restarts": config.trainer_restarts}
    keys = {s.stream_id: s.label_key for s in plan.streams}
    for host in plan.hosts:
        launched.hosts[host.host_id] = TrainerHost.options(**options).remote(
            host.host_id, [(sid, keys[sid]) for sid in host.stream_ids], student, num_classes, config_json,
            config.strategy, handle, coordinator, plan.trainer_settings)
        launched.trainers.update({sid: launched.hosts[host.host_id] for sid in host.stream_ids})
    cache_dir = str(config.cache_dir) if config.cache_dir else None
    if config.transport == "http":
        url, tokens = _deploy_ingress(config, launched)
        for stream in plan.streams:
            launched.edge_hosts[stream.stream_id] = HttpDeviceActor.options(**ray_options(plan.edge)).remote(
                stream.stream_id, stream.video, config_json, config.speed, config.duration_s, stream.send_phase_s,
                url, tokens[stream.stream_id], config.call_timeout_s, cache_dir)
            launched.edges[stream.stream_id] = launched.edge_hosts[stream.stream_id]
    streams = {s.stream_id: s for s in plan.streams}
    for edge_host in plan.edge_hosts if config.transport == "ray" else []:
        devices = {sid: dict(video=streams[sid].video, config_json=config_json, speed=config.speed,
                             max_duration_s=config.duration_s, send_phase_s=streams[sid].send_phase_s,
                             trainer=launched.trainers[sid], call_timeout_s=config.call_timeout_s, cache_dir=cache_dir,
                             teacher=handle, label_key=streams[sid].label_key,
                             teacher_eval_every=config.teacher_eval_every, drain_s=config.drain_s)
                   for sid in edge_host.stream_ids}
        actor = EdgeHost.options(**ray_options(plan.edge)).remote(devices)
        launched.edge_hosts[edge_host.host_id] = actor
        launched.edges.update({sid: actor for sid in edge_host.stream_ids})
    waiting = {"trainer hosts": (launched.hosts, plan.trainer), "edge hosts": (launched.edge_hosts, plan.edge)}
    for role, seconds in _wait_ready(waiting, config.ready_timeout_s, say).items():
        launched.setup_s["trainers" if role == "trainer hosts" else "edges"] = seconds

    phase = time.time()
    launched.calibrating = {host.calibrate.remote(): hid for hid, host in launched.hosts.items()}
    # One copy of the model for every edge; an HTTP device fetches its own, as in the field.
    bundle = None if config.transport == "http" else ray.put(
        ray.get(next(iter(launched.hosts.values())).edge_bundle.remote(), timeout=config.call_timeout_s))
    _prepare_edges(launched, bundle, config.ready_timeout_s)
    launched.setup_s["videos"] = time.time() - phase
    launched.setup_s["total"] = time.time() - began
    say(f"{len(plan.streams) - len(launched.failed)} of {len(plan.streams)} streams ready after "
        f"{launched.setup_s['total']:.0f} s")


def _check_proxy_port(port: int) -> None:
    """`serve.start` keeps a proxy that already runs, on whatever port it was given; devices
    sent to another port would only find nothing listening."""
    from ray.serve.context import _get_global_client  # no public API tells the running proxy's port

    running = _get_global_client().http_config.port
    if running != port:
        raise RuntimeError(f"Serve's HTTP proxy on this cluster already listens on port {running}, not {port}: "
                           f"pass --ingress-port {running}, or stop Serve (serve shutdown) first")


def _deploy_ingress(config: FleetConfig, launched: Launched) -> tuple[str, dict[str, str]]:
    """The device ingress on Serve's proxy, routing to the hosts placed here, and one device
    token per stream (registered in the run's own store). Returns (URL, tokens by stream)."""
    plan = launched.plan
    state_url = plan.trainer_settings.checkpoint_url
    registry = DeviceRegistry(state_url)
    tokens = {s.stream_id: registry.add(s.stream_id) for s in plan.streams}
    placed = {sid: (h.host_id, launched.hosts[h.host_id]) for h in plan.hosts for sid in h.stream_ids}
    # The teacher and student are the hosts' (built above): the ingress starts none of its own.
    settings = ServiceSettings(state_url=state_url, port=config.ingress_port, strategy=config.strategy,
                               profile=config.profile, call_timeout_s=config.call_timeout_s)
    directory = StreamDirectory.remote(None, ScaleRange(1, 1), 1, fixed=placed)  # dies with this driver
    launched.ingress_deployed = True
    serve.run(DeviceIngress.bind(None, settings, None, directory), name=INGRESS_APP, route_prefix="/")
    return f"http://127.0.0.1:{config.ingress_port}", tokens


def _prepare_edges(launched: Launched, bundle_ref, timeout_s: float) -> None:
    """Each edge loads the model and readies its own video on its own node; a bad video
    fails its stream alone."""
    _, errors, late = settle({edge.prepare.remote(sid, bundle_ref): sid for sid, edge in launched.edges.items()},
                              timeout_s)
    launched.failed.update(errors)
    launched.failed.update({sid: f"video not ready within {timeout_s:g} s" for sid in late})
    for sid in launched.failed:
        log.error("stream %s failed before it started: %s", sid, launched.failed[sid])


def _wait_ready(waiting: dict[str, tuple[dict, dict[str, float]]], timeout_s: float,
                say: SetupCallback) -> dict[str, float]:
    """Wait for actors the placement check said fit, saying how many run every few seconds.

    Slow is not failed: on a busy 2-core machine each torch process takes seconds to start,
    so the wait is long (`ready_timeout_s`) and visible. A constructor that raises ends the
    wait at once with its own error. Returns the seconds each role took to be running.
    """
    began = time.time()
    refs = {actor.ready.remote(): role for role, (actors, _) in waiting.items() for actor in actors.values()}
    remaining = {role: len(actors) for role, (actors, _) in waiting.items()}
    ready_after: dict[str, float] = {role: 0.0 for role, count in remaining.items() if count == 0}
    pending, said = list(refs), 0.0
    while pending and time.time() - began < timeout_s:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        for ref in done:
            role = refs[ref]
            try:
                ray.get(ref)
            except RayError as exc:
                raise RuntimeError(f"a {role[:-1]} failed to start: {reason(exc)}") from exc
            remaining[role] -= 1
            if remaining[role] == 0:
                ready_after[role] = time.time() - began
        if done and (not pending or time.time() - said >= 5.0):
            said = time.time()
            say(", ".join(f"{role} {len(actors) - remaining[role]}/{len(actors)}"
                          for role, (actors, _) in waiting.items()) + f" running after {said - began:.0f} s")
    if pending:
        late = ", ".join(f"{remaining[role]} of {len(actors)} {role} (each {resources})"
                         for role, (actors, resources) in waiting.items() if remaining[role])
        raise PlacementError(f"{late} were placeable but still not running after {timeout_s:g} s; the cluster has "
                             f"{alive_node_resources()}. A loaded machine starts processes slowly: raise "
                             "FleetConfig.ready_timeout_s, or pack more streams per trainer")
    return ready_after


def calibrate(launched: Launched, timeout_s: float) -> float:
    """C, from one round on every host at once (`TrainerHost.calibrate`, asked while the edges
    prepared their videos, so the hosts shared the cores as they will); NaN if none answered."""
    seconds, _, _ = settle(launched.calibrating, timeout_s)
    return rounds_capacity(list(seconds.values()))


def settle(calls: dict, timeout_s: float) -> tuple[dict, dict[object, str], list]:
    """Wait, at most `timeout_s`, for remote calls keyed by whom they ask: (values by key,
    error reasons by key, keys still pending)."""
    ready, pending = ray.wait(list(calls), num_returns=len(calls), timeout=timeout_s)
    values, errors = {}, {}
    for ref in ready:
        try:
            values[calls[ref]] = ray.get(ref)
        except RayError as exc:
            errors[calls[ref]] = reason(exc)
    return values, errors, [calls[ref] for ref in pending]


def teardown(launched: Launched) -> None:
    """Stop everything the run started; runs on success, error and Ctrl-C alike. The devices'
    processes go first, and are waited for: a device's long-poll still out to a trainer host
    that is killed under it would be retried, and Ray would say so on the console."""
    _kill(launched.edge_hosts.values())
    _wait_gone(launched.edge_hosts.values(), EDGE_EXIT_WAIT_S)
    _kill([*launched.hosts.values(), launched.coordinator, *launched.memory_probes])
    for app, deployed in ((INGRESS_APP, launched.ingress_deployed), (APP_NAME, launched.teacher_deployed)):
        if deployed:
            try:
                serve.delete(app)
            except Exception as exc:  # noqa: BLE001 - teardown goes on; say what was left behind
                log.error("could not delete the Serve app %s: %s", app, exc)


def _kill(actors) -> None:
    for actor in actors:
        if actor is not None:
            try:
                ray.kill(actor)
            except RayError:
                pass  # already gone


def _wait_gone(actors, timeout_s: float) -> None:
    """Until every one of `actors` answers as dead, or `timeout_s` passes (`ray.kill` only asks)."""
    deadline = time.monotonic() + timeout_s
    for actor in actors:
        while time.monotonic() < deadline:
            try:
                ray.get(actor.progress.remote([]), timeout=max(0.1, deadline - time.monotonic()))
            except RayError:  # dead (or not answering before the deadline): on to the next
                break
            time.sleep(0.1)


def reason(exc: BaseException) -> str:
    """The last line of a Ray error: the remote exception's own message, under its traceback."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]
