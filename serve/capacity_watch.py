"""Asking a running fleet, early and again every so often, whether its demand fits.

The driver's watch loop calls `CapacityWatch.poll` about once a second; every
`capacity_check_s` it reads the teacher replica's and the trainer hosts' counts
(`TeacherDeployment.load`, `TrainerHost.load`), holds them against capacity
(`ams_ray.fleet.capacity`) and says each new kind of overload once, on the console, with the
speed or layout that would fit. Every call is bounded; a part that does not answer is
skipped until the next check.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import ray
from ray.exceptions import RayError

from ams_ray.fleet.capacity import RunShape, TeacherLoad, TrainerLoad, teacher_warnings, trainer_warnings

log = logging.getLogger(__name__)


class CapacityWatch:
    def __init__(self, teacher, hosts: dict, shape: RunShape, every_s: float, timeout_s: float,
                 say: Callable[[str], None]) -> None:
        self.teacher, self.hosts, self.shape = teacher, hosts, shape
        self.every_s, self.timeout_s, self.say = every_s, timeout_s, say
        self.started = self._teacher_load()
        self.next_check = time.time() + every_s
        self.warnings: list[str] = []
        self._said: set[str] = set()  # the first words of each warning said: one line per kind

    def poll(self) -> None:
        if time.time() < self.next_check:
            return
        self.next_check = time.time() + self.every_s
        for warning in self._check():
            kind = warning.split(":")[0]
            if kind not in self._said:
                self._said.add(kind)
                self.warnings.append(warning)
                self.say(f"WARNING {warning}")

    def run_load(self) -> dict:
        """The teacher's counts over the whole run so far, with its capacity and demand (or {})."""
        now = self._teacher_load()
        if not (self.started and now):
            return {}
        load = TeacherLoad.between(self.started, now)
        return {**load.__dict__, "capacity_fps": load.capacity_fps, "demand_fps": load.demand_fps,
                "training_demand_fps": load.training_demand_fps}

    def _check(self) -> list[str]:
        warnings = []
        now = self._teacher_load()
        if now is None:
            warnings.append(f"teacher unresponsive: its replica did not answer a status call within "
                            f"{self.timeout_s:g} s; on a machine past capacity its process gets too little CPU to "
                            "label, and every stream waits. Run fewer --clients or a lower --speed, or give the "
                            "teacher its own node or a GPU")
        elif self.started:
            warnings += teacher_warnings(TeacherLoad.between(self.started, now), self.shape)
        trainers = self._trainer_load()
        if trainers is None:
            warnings.append(f"trainers unresponsive: the trainer hosts did not answer a status call within "
                            f"{self.timeout_s:g} s: the machine is past capacity. Run fewer --clients or a lower "
                            "--speed")
        else:
            warnings += trainer_warnings(trainers, self.shape)
        return warnings

    def _teacher_load(self) -> dict | None:
        response = self.teacher.load.remote()
        try:
            return response.result(timeout_s=self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a replica being replaced or too busy: checked next time
            response.cancel()  # else Serve's router keeps trying to place it, long after anyone waits
            log.info("teacher load not read: %s", type(exc).__name__)
            return None

    def _trainer_load(self) -> TrainerLoad | None:
        refs = [host.load.remote() for host in self.hosts.values()]
        try:
            loads = ray.get(refs, timeout=self.timeout_s)
        except (RayError, TimeoutError) as exc:
            log.info("trainer load not read: %s", type(exc).__name__)
            return None
        slots = {load["accelerator"]: load["slots"] for load in loads}  # hosts sharing a node share its cores
        return TrainerLoad(sum(l["rounds"] for l in loads), sum(l["train_cpu_s"] for l in loads),
                           sum(l["train_s"] for l in loads), sum(slots.values()), sum(l["shed_chunks"] for l in loads),
                           sum(l["rate_cuts"] for l in loads))
