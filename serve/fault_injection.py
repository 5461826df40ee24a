"""Carries out `ams_ray.fleet.faults.Fault`s on a running fleet: kills the named process."""

from __future__ import annotations

import logging

import ray

from ams_ray.fleet.faults import Fault
from serve.teacher import APP_NAME

log = logging.getLogger(__name__)
SERVE_NAMESPACE = "serve"


def teacher_replicas() -> list[str]:
    """Actor names of the teacher app's live replicas (Serve names them SERVE_REPLICA::APP#...)."""
    names = ray.util.list_named_actors(all_namespaces=True)
    return sorted(n["name"] for n in names
                  if n["namespace"] == SERVE_NAMESPACE and n["name"].startswith(f"SERVE_REPLICA::{APP_NAME}#"))


def inject(fault: Fault, edges: dict, trainers: dict) -> None:
    """Kill what `fault` names. A trainer is restarted by Ray (it resumes from its
    checkpoint); an edge is not (the device is gone); a teacher replica is replaced by Serve."""
    if fault.kind == "kill-teacher":
        replicas = teacher_replicas()
        if not replicas:
            raise RuntimeError("kill-teacher: the teacher deployment has no live replica to kill")
        ray.kill(ray.get_actor(replicas[0], namespace=SERVE_NAMESPACE), no_restart=True)
    else:
        handles = trainers if fault.kind == "kill-trainer" else edges
        if fault.stream not in handles:
            raise ValueError(f"{fault}: no stream {fault.stream!r}; streams are {', '.join(sorted(handles))}")
        ray.kill(handles[fault.stream], no_restart=fault.kind == "kill-edge")
    log.warning("fault injected: %s", fault)
