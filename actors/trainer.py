"""StreamTrainer: the server side of one stream; wraps the library's StreamSession.

A chunk arrives from the edge -> labelled by the shared Teacher deployment -> window, ASR,
ATR -> if a round is due: a training turn from the coordinator, train, reply with the
packet. The reply is the downlink: the edge applies what `receive_chunk` returns.

The process is disposable; the stream is not. After every packet the device reports it
applied (each chunk says which model the device holds), the session is written to the
checkpoint store, and a restarted trainer (Ray reruns this constructor) resumes from there.
"""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayError

from actors.metrics import TrainerMetrics
from actors.teacher_client import label_with_retry
from ams_ray.checkpoint_store import CheckpointError, CheckpointStore
from ams_ray.fleet_plan import TrainerSettings
from ams_ray.messages import SampleChunk
from ams_ray.process_memory import own_memory_mb, return_free_heap
from ams_ray.stream_state import StreamState, StreamStateError

# torch and everything that imports it are imported inside the actor, never at module level:
# an edge holding a handle to this actor imports this module, and must stay free of torch.

log = logging.getLogger(__name__)


@ray.remote(max_restarts=3, max_task_retries=2)
class StreamTrainer:
    def __init__(self, stream_id: str, label_key: str | None, student_spec: str, num_classes: int,
                 config_json: str, strategy: str, teacher_handle, coordinator, settings: TrainerSettings) -> None:
        import torch

        from ams_ray.config import AmsConfig
        from ams_ray.distill import OnlineDistiller
        from ams_ray.server_stream import StreamSession
        from ams_ray.simulate import STRATEGIES
        from ams_ray.students import build_student

        torch.set_num_threads(1)
        self.stream_id, self.label_key, self.settings = stream_id, label_key, settings
        self.config = AmsConfig.model_validate_json(config_json)
        spec = STRATEGIES[strategy]
        # A Ray GPU grant is only logical; train on CUDA when it is also physically there.
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.distiller = OnlineDistiller(build_student(student_spec, num_classes), self.config.training, spec.strategy,
                                         stream_id=stream_id, encoding=self.config.packet_format, seed=self.config.seed,
                                         device=device)
        self.session = StreamSession(self.distiller, self._label, num_classes, self.config, asr=spec.asr, atr=spec.atr)
        self.teacher, self.coordinator = teacher_handle, coordinator
        self.metrics = TrainerMetrics(stream_id)
        self.teacher_batches: list[int] = []
        self.labelled_wall: list[float] = []
        self.train_seconds = 0.0
        self.checkpoint = {"written": 0, "sequence": 0, "bytes": 0, "seconds": 0.0, "error": None}
        self.store = CheckpointStore(settings.checkpoint_url)
        self.resumed_from = self._resume()
        self.incarnation = uuid.uuid4().hex
        ray.get(coordinator.register.remote(stream_id, self._device(), self._slots(), self.incarnation),
                timeout=settings.call_timeout_s)

    # ------------------------------------------------------------------ set-up
    def _resume(self) -> int | None:
        """Restore the last checkpoint, if any; returns the packet sequence resumed from."""
        try:
            data = self.store.load(self.stream_id)
            if data is None:
                return None
            self.session.restore(StreamState.from_bytes(data))
        except (CheckpointError, StreamStateError) as exc:
            self.metrics.errors.count("checkpoint_unreadable")
            log.error("stream %s: starting afresh, the checkpoint cannot be used: %s", self.stream_id, exc)
            return None
        log.warning("stream %s: resumed from its checkpoint at packet %d", self.stream_id, self.distiller.sequence)
        return self.distiller.sequence

    def ready(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def _device(self) -> str:
        """The device this trainer shares with others: a GPU, or its node's CPUs."""
        node = ray.get_runtime_context().get_node_id()
        gpus = ray.get_gpu_ids()
        return f"{node[:12]}:gpu{','.join(map(str, gpus))}" if gpus else f"{node[:12]}:cpu"

    def _slots(self) -> int:
        """One round at a time per GPU; on a CPU node one per core (each trainer trains on one thread)."""
        if ray.get_gpu_ids():
            return 1
        node = ray.get_runtime_context().get_node_id()
        cpus = next((n["Resources"].get("CPU", 1.0) for n in ray.nodes() if n["NodeID"] == node), 1.0)
        return max(1, int(cpus))

    def edge_bundle(self):
        return self.distiller.edge_bundle(self.config.video.height, self.config.video.width)

    # ------------------------------------------------------------------ the data path
    def receive_chunk(self, data: bytes) -> tuple[float, bytes | None]:
        """One upload -> (sampling rate for the device, update packet or None)."""
        chunk = SampleChunk.from_bytes(data)
        s = self.session.stats
        before = (s.duplicate_chunks, s.missing_chunks, s.unlabelled_chunks)
        rate = self.session.receive(chunk)
        for kind, was, now in zip(("duplicate_chunk", "missing_chunk", "unlabelled_chunk"), before,
                                  (s.duplicate_chunks, s.missing_chunks, s.unlabelled_chunks)):
            self.metrics.errors.count(kind, now - was)
        self.acknowledge(chunk.last_packet, chunk.model_version)
        now_s = chunk.times_s[-1]
        if not self.session.due(now_s):
            return rate, None
        result = self._train_in_turn(now_s)
        return rate, result.packet

    def acknowledge(self, packet: int, version: int) -> None:
        """The device applied `packet`: checkpoint the stream (once per packet), so a restart
        resumes with exactly the model the device holds."""
        if packet and packet == self.distiller.sequence and version == self.distiller.version \
                and packet > self.checkpoint["sequence"]:
            self._write_checkpoint()

    def _label(self, frames: np.ndarray, frame_indices: list[int]) -> np.ndarray:
        """Label through the teacher (`label_with_retry`); a frame that fails twice gives the
        chunk up (LabellingFailed, counted) and the stream goes on."""
        from ams_ray.server_stream import LabellingFailed

        requests = [(self.label_key, int(i), f) for f, i in zip(frames, frame_indices)]
        results = label_with_retry(self.teacher, requests, self.settings.call_timeout_s)
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            self.metrics.errors.count("teacher_failed")
            raise LabellingFailed(f"{len(failures)} of {len(requests)} frames unlabelled after a retry: "
                                  f"{type(failures[0]).__name__}: {str(failures[0]).splitlines()[0][:200]}")
        self.teacher_batches += [batch for _, batch, _ in results]
        self.labelled_wall.append(time.time())
        return np.stack([labels for labels, _, _ in results])

    def _train_in_turn(self, now_s: float):
        asked = time.time()
        granted = self._acquire_turn()
        self.metrics.device_wait.observe(time.time() - asked)
        try:
            began = time.perf_counter()
            result = self.session.train(now_s)
            seconds = time.perf_counter() - began
        finally:
            if granted:
                self.coordinator.release.remote(self.stream_id, self.incarnation)
        self.train_seconds += seconds
        self.metrics.training.observe(seconds)
        return_free_heap()  # an idle trainer should not keep its last round's activations
        if result.skipped:
            self.metrics.errors.count("skipped_round")
        return result

    def _acquire_turn(self) -> bool:
        """Wait for a turn, but never forever: past the timeout the round trains anyway."""
        try:
            return bool(ray.get(self.coordinator.acquire.remote(self.stream_id, self.incarnation),
                                timeout=self.settings.call_timeout_s))
        except (GetTimeoutError, RayError) as exc:
            self.metrics.errors.count("turn_timeout")
            log.warning("stream %s: no training turn (%s); training without one", self.stream_id, type(exc).__name__)
            self.coordinator.release.remote(self.stream_id, self.incarnation)
            return False

    def _write_checkpoint(self) -> None:
        began = time.perf_counter()
        try:
            data = self.session.snapshot(self.settings.checkpoint_window_s).to_bytes()
            self.store.save(self.stream_id, data)
        except CheckpointError as exc:
            self.metrics.errors.count("checkpoint_failed")
            if self.checkpoint["error"] is None:  # said once; the stream goes on without checkpoints
                log.error("stream %s: %s; the stream goes on without checkpoints", self.stream_id, exc)
                self.checkpoint["error"] = str(exc)
            return
        self.checkpoint.update(written=self.checkpoint["written"] + 1, bytes=len(data), sequence=self.distiller.sequence,
                               seconds=self.checkpoint["seconds"] + time.perf_counter() - began)

    def stats(self) -> dict:
        s = self.session.stats
        return {"stream_id": self.stream_id, "rounds": s.rounds, "skipped_rounds": s.skipped_rounds,
                "chunks": s.chunks, "frames_labelled": s.frames_labelled, "duplicate_chunks": s.duplicate_chunks,
                "missing_chunks": s.missing_chunks, "unlabelled_chunks": s.unlabelled_chunks, "resyncs": s.resyncs,
                "train_seconds": self.train_seconds, "teacher_batches": self.teacher_batches,
                "labelled_wall": self.labelled_wall, "checkpoint": self.checkpoint,
                "restarted": ray.get_runtime_context().was_current_actor_reconstructed,
                "resumed_from_packet": self.resumed_from,
                "node_id": ray.get_runtime_context().get_node_id(), "memory_mb": own_memory_mb()}
