"""Carries out `ams_ray.fleet.faults.Fault`s on a running fleet: kills the named process."""

from __future__ import annotations

import logging

import ray

from ams_ray.fleet.faults import Fault
from serve.replicas import replica_names
from serve.teacher import APP_NAME, DEPLOYMENT_NAME

log = logging.getLogger(__name__)


def teacher_replicas() -> list[tuple[str, str]]:
    """(actor name, namespace) of the teacher deployment's live replicas."""
    return replica_names(APP_NAME, DEPLOYMENT_NAME)


def inject(fault: Fault, edges: dict, trainers: dict) -> None:
    """Kill what `fault` names. A trainer is restarted by Ray (it resumes from its
    checkpoint); an edge is not (the device is gone); a teacher replica is replaced by Serve."""
    if fault.kind == "kill-teacher":
        replicas = teacher_replicas()
        if not replicas:
            raise RuntimeError("kill-teacher: the teacher deployment has no live replica to kill")
        name, namespace = replicas[0]
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
    else:
        handles = trainers if fault.kind == "kill-trainer" else edges
        if fault.stream not in handles:
            raise ValueError(f"{fault}: no stream {fault.stream!r}; streams are {', '.join(sorted(handles))}")
        ray.kill(handles[fault.stream], no_restart=fault.kind == "kill-edge")
    log.warning("fault injected: %s", fault)
