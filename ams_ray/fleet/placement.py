"""Will the cluster fit what the user asked for? Decided before any actor is created.

Ray never refuses an impossible request: an actor asking for 0.25 GPU on a GPU-less
cluster just stays pending forever. So the runtime checks its whole demand against the
nodes first and fails within seconds with what was asked and what exists.
"""

from __future__ import annotations

from dataclasses import dataclass


class PlacementError(RuntimeError):
    """The cluster cannot hold the requested actors; the message says why and what to change."""


@dataclass(frozen=True)
class Demand:
    role: str
    count: int
    resources: dict[str, float]  # per actor, Ray resource names ("CPU", "GPU", custom)


def trainer_resources(cluster_gpus: float, hosts: int, gpus_per_trainer: float | None, cpus_per_trainer: float,
                      role_resource: str | None = None) -> dict[str, float]:
    """What one trainer host asks for: a GPU fraction when one is asked for or the cluster has
    GPUs (by default the GPUs shared evenly among the hosts, at most one each), plus a CPU
    fraction always, since Ray would otherwise reserve a whole CPU per actor."""
    resources = {"CPU": cpus_per_trainer}
    if gpus_per_trainer is None and cluster_gpus > 0:
        gpus_per_trainer = min(1.0, cluster_gpus / hosts)
    if gpus_per_trainer:
        resources["GPU"] = gpus_per_trainer
    if role_resource:
        resources[role_resource] = 0.001
    return {k: v for k, v in resources.items() if v > 0}


def check_fits(demands: list[Demand], nodes: list[dict[str, float]]) -> None:
    """Raise PlacementError unless every actor fits some node and the totals fit the cluster.

    This is a necessary check, not a bin-packing proof: fragmentation can still leave an
    actor pending, which the runtime's readiness timeout then reports.
    """
    totals: dict[str, float] = {}
    for node in nodes:
        for key, value in node.items():
            totals[key] = totals.get(key, 0.0) + value
    needed: dict[str, float] = {}
    for demand in demands:
        for key, value in demand.resources.items():
            needed[key] = needed.get(key, 0.0) + value * demand.count
        if demand.count and not any(all(node.get(k, 0.0) >= v for k, v in demand.resources.items()) for node in nodes):
            raise PlacementError(
                f"no node can hold one {demand.role} asking for {_fmt(demand.resources)}; nodes have "
                + "; ".join(_fmt(n) for n in nodes)
                + ". Lower the per-actor request (e.g. --gpus-per-trainer / --streams-per-gpu) or add nodes."
            )
    for key, value in needed.items():
        if value > totals.get(key, 0.0) + 1e-9:
            asked = ", ".join(f"{d.count} {d.role}s x {d.resources.get(key, 0):g} {key}" for d in demands
                              if d.resources.get(key))
            raise PlacementError(
                f"asked for {value:g} {key} in all ({asked}) but the cluster has {totals.get(key, 0.0):g}; "
                "run fewer clients, pack more streams per device, or add nodes"
            )


def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())
                            if k in ("CPU", "GPU") or not k.startswith(("node:", "memory", "object_store"))) + "}"
