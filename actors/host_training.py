"""The side of a TrainerHost that trains: due rounds ranked by the scheduler, turns, steps.

Every stream's worker queues its due round in the host's `RoundQueue`, ranked by the
scheduler's policy (`ams_ray.service.round_policy`), and awaits its result (None: it stepped
aside for a newer chunk). One training loop takes the best round (fused: every waiting
round), asks the coordinator for a turn with that round's priority, trains on the host's one
training thread, and books each stream its share of the step. Mixed into `TrainerHost`,
whose settings, coordinator and threads it uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ray.exceptions import RayError

from ams_ray.fleet.process_memory import return_free_heap
from ams_ray.service.round_policy import RoundClaim

log = logging.getLogger(__name__)


@dataclass
class DueRound:
    stream: object  # HostedStream
    now_s: float
    queued: float  # wall time it joined the queue
    reply: asyncio.Future


class HostTraining:
    async def _queue_round(self, stream, now_s: float):
        """The round's result once trained, or None if it stepped aside for a newer chunk."""
        loop = asyncio.get_running_loop()
        if self.due_changed is None:
            self.due_changed = asyncio.Event()
            loop.create_task(self._train_due_rounds())
        round_ = DueRound(stream, now_s, time.time(), loop.create_future())
        claim = RoundClaim.of(stream.stream_id, next(self.arrivals), stream.value, now_s)
        stream.priority = self.round_policy.priority(claim)
        displaced = self.due.push(claim, round_)
        if displaced is not None and not displaced.reply.done():
            displaced.reply.set_result(None)  # a round of the stream's earlier copy here, which was let go
        self.due_changed.set()
        return await round_.reply

    async def _train_due_rounds(self) -> None:
        """The host's one training loop: wait for a due round, get a turn with the best one's
        priority, take the best (fused: every waiting round), train, reply."""
        while True:
            rounds, granted = await self._next_rounds()
            try:
                results = await asyncio.get_running_loop().run_in_executor(self.training_thread, self._train, rounds)
            except Exception as exc:  # noqa: BLE001 - the error belongs to these rounds' streams
                for r in rounds:
                    r.reply.set_exception(exc)
                continue
            finally:
                if granted:
                    self.coordinator.release.remote(self.host_id, self.incarnation)
            for r, (result, seconds, cpu_seconds) in zip(rounds, results):
                r.reply.set_result(r.stream.booked(r.now_s, result, seconds, cpu_seconds,
                                                   time.time() - r.queued - seconds))

    async def _next_rounds(self) -> tuple[list[DueRound], bool]:
        """The rounds to train next, and whether the coordinator granted a turn for them."""
        while True:
            while not len(self.due):
                self.due_changed.clear()
                await self.due_changed.wait()
            if self.settings.fused:
                await asyncio.sleep(self.settings.fusion_window_s)
            best = self.due.best()
            if best is None:
                continue  # every waiting round stepped aside meanwhile
            granted = await self._acquire_turn(self.round_policy.priority(best))
            if len(self.due):
                picked = self.due.pop_all() if self.settings.fused else [self.due.pop()]
                return [round_ for _, round_ in picked], granted
            if granted:  # the rounds stepped aside while the turn came: give it back
                self.coordinator.release.remote(self.host_id, self.incarnation)

    def _train(self, rounds: list[DueRound]) -> list[tuple[object, float, float]]:
        """On the training thread: one step for all `rounds`; each stream is charged its share
        of the step's wall time and of the thread's CPU time (wall - CPU: waiting for a core)."""
        from ams_ray.learn.fused_training import train_rounds

        began, cpu_began = time.perf_counter(), time.thread_time()
        inputs = [r.stream.session.round_inputs(r.now_s) for r in rounds]
        results = train_rounds([r.stream.distiller for r in rounds], [w for w, _ in inputs], [q for _, q in inputs])
        seconds, cpu_seconds = time.perf_counter() - began, time.thread_time() - cpu_began
        self.fused_steps.append(len(rounds))
        return_free_heap()  # an idle host should not keep its last step's activations
        return [(result, seconds / len(rounds), cpu_seconds / len(rounds)) for result in results]

    async def _acquire_turn(self, priority: float) -> bool:
        """Wait for a turn, but never forever: past the timeout the rounds train anyway."""
        try:
            asked = self.coordinator.acquire.remote(self.host_id, self.incarnation, priority)
            return bool(await asyncio.wait_for(asked, self.settings.call_timeout_s))
        except (asyncio.TimeoutError, RayError) as exc:
            self.errors.count("turn_timeout")
            log.warning("host %s: no training turn (%s); training without one", self.host_id, type(exc).__name__)
            self.coordinator.release.remote(self.host_id, self.incarnation)
            return False

    async def calibrate(self) -> float:
        """Seconds one round of this host's student takes here now, on a full window of noise
        (a round costs the same whatever the pixels): the second of two, the first paying for
        warm-up. What the run's capacity is planned from, before any stream starts."""
        from ams_ray.learn.calibration import round_seconds

        return await asyncio.get_running_loop().run_in_executor(
            self.training_thread, round_seconds, self._fresh_distiller(), self.height, self.width, self.period_s)

