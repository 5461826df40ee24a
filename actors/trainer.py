"""TrainerHost: the server side of K streams in one process (K = 1: a per-stream trainer).

The data path, the same for Ray devices and HTTP devices (through `serve/ingress.py`):
`submit_chunk` puts a chunk in its stream's backlog and answers at once with the sampling
rate -> the stream's worker labels it with the shared Teacher deployment (training frames
go before scoring frames there; awaited, so the host keeps serving its other streams) ->
window, ASR, ATR -> if a round is due, it joins the host's round queue, ranked by the
scheduler's policy (`ams_ray.service.round_policy`: fifo, round_robin or gain, which may
also let a round step aside or a stream hibernate). One training thread takes the best
round from that queue, each under a training turn from the coordinator asked for with that
round's priority: one at a time, or (`fused`) every waiting round as one batched step
(`ams_ray.learn.fused_training`; the training side is `actors/host_training.py`). A packet goes to the stream's outbox, where the device's
long-poll (`next_packet`) takes it; nothing of the downlink waits for the next upload.

Why many streams per process: `import torch` costs ~5 CPU-seconds and ~0.9 GB per process
here and a CUDA context several hundred MB of GPU memory, while one more tiny student and
its window cost a few MB. The process is disposable; the streams are not: each has a log in
the store (each chunk once labelled, each packet once applied), and a restarted host (Ray
reruns this constructor) resumes all of them from it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import ray

from actors.coordinator import find_coordinator
from actors.device_streams import DeviceStreams
from actors.host_training import DueRound, HostTraining
from actors.teacher_client import label_with_retry
from actors.telemetry import ErrorCounter
from ams_ray.fleet.process_memory import own_memory_mb
from ams_ray.models.student_spec import StudentSpec
from ams_ray.service.round_policy import RoundQueue, make_round_policy
from ams_ray.service.stream_lease import LeaseLost
from ams_ray.service.trainer_settings import TrainerSettings
from ams_ray.wire.messages import SampleChunk

# torch and everything that imports it are imported inside the actor, never at module level:
# an edge holding a handle to this actor imports this module, and must stay free of torch.

log = logging.getLogger(__name__)


@ray.remote(max_restarts=3, max_task_retries=2)
class TrainerHost(DeviceStreams, HostTraining):
    def __init__(self, host_id: str, streams: list[tuple[str, str | None]], student: StudentSpec, num_classes: int,
                 config_json: str, strategy: str, teacher_handle, coordinator: str, settings: TrainerSettings) -> None:
        import torch

        from actors.hosted_stream import HostedStream
        from ams_ray.config import AmsConfig
        from ams_ray.learn.distill import OnlineDistiller
        from ams_ray.learn.strategies import STRATEGIES
        from ams_ray.models.students import build_student
        from ams_ray.service.checkpoint_store import CheckpointStore

        torch.set_num_threads(1)
        self.host_id, self.settings = host_id, settings
        config = AmsConfig.model_validate_json(config_json)
        # A Ray GPU grant is only logical; train on CUDA when it is also physically there.
        self.device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.store = CheckpointStore(settings.checkpoint_url)
        self.checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="ams-checkpoint")
        self._new_stream = lambda sid, key, epoch=None: HostedStream(
            sid, key, student, num_classes, config, strategy, settings, self.store, self.checkpoint_thread, self.device,
            epoch)
        self.label_keys = dict(streams)  # a stream reopened here (at a new epoch) keeps its key
        self.streams = {sid: self._new_stream(sid, key) for sid, key in streams}
        self.retired = 0  # streams closed for idleness (DeviceStreams)
        self.stopping = False  # the service drains: no stream opens here any more (DeviceStreams)
        self.released: dict[str, int | None] = {}  # streams moved away, and the epoch they were held at (DeviceStreams)
        self._retiring = None
        self._bundle = None
        self._fresh_distiller = lambda: OnlineDistiller(build_student(student, num_classes), config.training,
                                                        STRATEGIES[strategy].strategy)
        self.height, self.width = config.video.height, config.video.width
        self.period_s = config.training.period_s
        self.teacher, self.coordinator = teacher_handle, find_coordinator(coordinator)  # by name: see start_coordinator
        self.training_thread = ThreadPoolExecutor(1, thread_name_prefix="ams-train")
        self.scoring_thread = ThreadPoolExecutor(1, thread_name_prefix="ams-agreement")
        self.round_policy = make_round_policy(settings.scheduler, config.training.period_s,
                                              settings.fairness_floor_periods, settings.hibernate_gain)
        self.due: RoundQueue[DueRound] = RoundQueue(self.round_policy)
        self.due_changed: asyncio.Event | None = None  # made on the actor's event loop, at the first round
        self.arrivals = itertools.count()  # the order rounds join the queue in
        self.fused_steps: list[int] = []  # rounds per training step
        self.errors = ErrorCounter("trainer")
        self.incarnation = uuid.uuid4().hex
        self.accelerator, self.slots = self._accelerator_name(), self._slots()
        ray.get(self.coordinator.register.remote(host_id, self.accelerator, self.slots, self.incarnation),
                timeout=settings.call_timeout_s)

    # ------------------------------------------------------------------ set-up
    def ready(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def _accelerator_name(self) -> str:
        """The accelerator this host shares with others: a GPU, or its node's CPUs."""
        node = ray.get_runtime_context().get_node_id()
        gpus = ray.get_gpu_ids()
        return f"{node[:12]}:gpu{','.join(map(str, gpus))}" if gpus else f"{node[:12]}:cpu"

    def _slots(self) -> int:
        """One step at a time per GPU; on a CPU node one per core (each host trains on one thread)."""
        if ray.get_gpu_ids():
            return 1
        node = ray.get_runtime_context().get_node_id()
        cpus = next((n["Resources"].get("CPU", 1.0) for n in ray.nodes() if n["NodeID"] == node), 1.0)
        return max(1, int(cpus))

    def edge_bundle(self):
        """The pretrained student as devices receive it at start (the same for every stream),
        exported once from a fresh copy: a stream's own model may already be trained."""
        if self._bundle is None:
            self._bundle = self._fresh_distiller().edge_bundle(self.height, self.width)
        return self._bundle

    # ------------------------------------------------------------------ the data path
    async def submit_chunk(self, stream_id: str, data: bytes, epoch: int | None = None) -> tuple[str, float]:
        """One upload -> (outcome, sampling rate for the device), answered once the chunk is in
        the stream's backlog, before it is labelled. Outcomes: "accepted"; "replayed" (a number
        already taken: nothing changes); "shed" (the backlog was full: counted, not labelled).
        The rate is the stream's, lowered while its chunks wait for labels (`BacklogPolicy`).
        `epoch`: the caller's lease for the stream (`DeviceStreams`)."""
        stream = self._opened(stream_id, epoch, entering=True)
        chunk = SampleChunk.from_bytes(data)
        async with stream.in_sequence(chunk.sequence):
            outcome = stream.submit(chunk)
            logged = stream.log_accepted(chunk) if outcome == "accepted" else None
        if outcome == "accepted":
            self._step_aside(stream)
        if logged is not None:
            await asyncio.wrap_future(logged)  # "accepted" means in the stream's log: it survives a crash
            if stream.fenced:
                raise LeaseLost(f"stream {stream_id} moved off host {self.host_id} before chunk {chunk.sequence} "
                                "was logged here; upload it again")
        self._ensure_worker(stream)
        return outcome, stream.rate_to_tell()

    def _step_aside(self, stream) -> None:
        """A newer chunk came for a stream whose round still waits: under a deferring policy the
        round steps aside, and the stream asks again with that chunk."""
        waiting = self.due.step_aside(stream.stream_id)
        if waiting is not None and not waiting.reply.done():
            waiting.reply.set_result(None)

    def _ensure_worker(self, stream) -> None:
        """Start the stream's worker when chunks wait and none runs (also for chunks a restart
        brought back from the log)."""
        if stream.backlog and (stream.worker is None or stream.worker.done()):
            stream.worker = asyncio.get_running_loop().create_task(self._work_through(stream))

    async def next_packet(self, stream_id: str, after: int, version: int | None, timeout_s: float,
                          epoch: int | None = None) -> tuple[int, bytes, int] | None:
        """The stream's oldest packet numbered above `after`, its number and the chunk that made
        its round due, waiting up to `timeout_s` (a long-poll). `version`: the model version the
        device holds after packet `after`, which acknowledges it (it goes into the stream's log).
        A device that asks again after a lost reply gets the same packet again (counted)."""
        stream = self._opened(stream_id, epoch)
        if version is not None:
            await self._checkpoint_if_due(stream, after, version)
        return await stream.packet_after(after, timeout_s)

    async def _work_through(self, stream) -> None:
        """The stream's one worker: its backlog in order, each chunk labelled and recorded and,
        when a round falls due, trained and posted to the outbox before the next chunk is
        taken (so a round trains on exactly the chunks before it). A chunk that fails is
        counted and the worker goes on."""
        while stream.backlog and not stream.draining:
            chunk, kept, submitted_wall = stream.backlog.popleft()
            stream.taking = chunk
            try:
                if not kept:
                    stream.shed(chunk)
                    continue
                due_at = await self._take(stream, chunk, submitted_wall)
                if due_at is not None:
                    await self._train_and_post(stream, due_at, chunk.sequence)
            except Exception as exc:  # noqa: BLE001 - no caller waits: the error is counted and logged
                stream.log_dropped(chunk)
                stream.metrics.errors.count("chunk_failed")
                log.error("stream %s: chunk %d failed: %s: %s", stream.stream_id, chunk.sequence,
                          type(exc).__name__, exc)
            finally:
                stream.taking = None

    async def _take(self, stream, chunk: SampleChunk, submitted_wall: float) -> float | None:
        """Accept, label and record a chunk: the video time a round fell due at, or None (none
        due, or the chunk was a duplicate or went unlabelled)."""
        frames = stream.accept(chunk)
        if frames is None:
            stream.log_dropped(chunk)
            return None
        requests = [(stream.label_key, int(i), f) for f, i in zip(frames, chunk.frame_indices)]
        results = await label_with_retry(self.teacher, requests, self.settings.label_timeout_s)
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            stream.unlabelled(chunk, f"{len(failures)} of {len(requests)} frames unlabelled after a retry: "
                                     f"{type(failures[0]).__name__}: {str(failures[0]).splitlines()[0][:200]}")
            return None
        labels = stream.record(chunk, frames, results, submitted_wall)
        if self.round_policy.measures_agreement:
            await asyncio.get_running_loop().run_in_executor(self.scoring_thread, stream.measure, chunk, frames, labels)
            if self.round_policy.reverts(stream.value) and not stream.distiller.at_pretrained:
                packet = stream.revert()
                await stream.post(stream.distiller.sequence, packet, chunk.sequence)
        await self._checkpoint_if_due(stream, chunk.last_packet, chunk.model_version)
        now_s = chunk.times_s[-1]
        return now_s if stream.session.due(now_s) else None

    async def _train_and_post(self, stream, now_s: float, due_chunk: int) -> None:
        stream.rounds_in_flight += 1
        try:
            stream.resync_if_superseded()  # no round of this stream is in flight: the worker is its only trainer
            resting = self.round_policy.rests(stream.value, now_s)
            if resting is not None:
                stream.value.rested()
                stream.deferred(resting)
                return
            stream.value.asked(now_s)
            result = await self._queue_round(stream, now_s)
            if result is None:
                stream.deferred("stepped_aside")
                return
            stream.value.probing = self.round_policy.outpaced(stream.value)  # trained while outpaced: a probe
            if result.packet is not None:
                await stream.post(stream.distiller.sequence, result.packet, due_chunk)
        except Exception as exc:  # noqa: BLE001 - the stream goes on; its next round may succeed
            stream.metrics.errors.count("round_failed")
            log.error("stream %s: a round failed: %s", stream.stream_id, exc)
        finally:
            stream.rounds_in_flight -= 1

    async def _checkpoint_if_due(self, stream, packet: int, version: int) -> None:
        due = stream.acknowledged(packet, version)
        if due:
            await asyncio.get_running_loop().run_in_executor(self.checkpoint_thread, stream.log_packets, due)

    def cpu_seconds(self) -> float:
        """CPU time of this process so far (every thread), for the server's CPU budget."""
        return time.process_time()

    def load(self) -> dict:
        """What this host's streams asked of it so far, for capacity checks while a run goes."""
        streams = list(self.streams.values())
        return {"accelerator": self.accelerator, "slots": self.slots,
                "rounds": sum(s.session.stats.rounds for s in streams),
                "train_cpu_s": sum(s.train_cpu_seconds for s in streams),
                "train_s": sum(s.train_seconds for s in streams),
                "shed_chunks": sum(s.session.stats.shed_chunks for s in streams),
                "rate_cuts": sum(s.rate_cuts for s in streams)}

    def stats(self) -> dict:
        """This host and its streams, for the run's report."""
        context = ray.get_runtime_context()
        node, restarted = context.get_node_id(), context.was_current_actor_reconstructed
        streams = [{**s.stats(), "host": self.host_id, "restarted": restarted, "node_id": node}
                   for s in self.streams.values()]
        return {"host": self.host_id, "streams": streams, "node_id": node, "restarted": restarted,
                "device": self.device, "fused": self.settings.fused, "steps": len(self.fused_steps),
                "rounds_per_step": sum(self.fused_steps) / len(self.fused_steps) if self.fused_steps else 0.0,
                "retired_streams": self.retired, "memory_mb": own_memory_mb()}
