"""StreamTrainer: one per stream; wraps the library's StreamSession and moves its messages.

A chunk arrives from the edge -> labelled by the shared Teacher deployment -> window, ASR,
ATR -> if a round is due: wait for the coordinator's turn, train, send the packet to the edge.
"""

from __future__ import annotations

import time

import numpy as np
import ray

from actors.metrics import TrainerMetrics
from ams_ray.messages import SampleChunk
from ams_ray.process_memory import own_memory_mb, return_free_heap

# torch and everything that imports it are imported inside the actor, never at module level:
# an edge holding a handle to this actor imports this module, and must stay free of torch.


@ray.remote(max_restarts=0)
class StreamTrainer:
    def __init__(self, stream_id: str, video_path: str, student_spec: str, num_classes: int, config_json: str,
                 strategy: str, teacher_handle, coordinator) -> None:
        import torch

        from ams_ray.config import AmsConfig
        from ams_ray.distill import OnlineDistiller
        from ams_ray.server_stream import StreamSession
        from ams_ray.simulate import STRATEGIES
        from ams_ray.students import build_student

        torch.set_num_threads(1)
        self.stream_id, self.video_path = stream_id, video_path
        self.config = AmsConfig.model_validate_json(config_json)
        spec = STRATEGIES[strategy]
        # A Ray GPU grant is only logical; train on CUDA when it is also physically there.
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.distiller = OnlineDistiller(build_student(student_spec, num_classes), self.config.training, spec.strategy,
                                         stream_id=stream_id, encoding=self.config.packet_format, seed=self.config.seed,
                                         device=device)
        self.session = StreamSession(self.distiller, self._label, num_classes, self.config, asr=spec.asr, atr=spec.atr)
        self.teacher, self.coordinator, self.edge = teacher_handle, coordinator, None
        self.teacher_batches: list[int] = []
        self.train_seconds = 0.0
        self.metrics = TrainerMetrics(stream_id)

    def ready(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def device(self) -> str:
        """The device this trainer shares with others: a GPU, or its node's CPUs."""
        node = ray.get_runtime_context().get_node_id()[:12]
        gpus = ray.get_gpu_ids()
        return f"{node}:gpu{','.join(map(str, gpus))}" if gpus else f"{node}:cpu"

    def edge_bundle(self):
        return self.distiller.edge_bundle(self.config.video.height, self.config.video.width)

    def attach(self, edge) -> None:
        self.edge = edge

    def _label(self, frames, frame_indices):
        responses = [self.teacher.label.remote((self.video_path, int(i), f)) for f, i in zip(frames, frame_indices)]
        results = [r.result() for r in responses]
        self.teacher_batches += [batch for _, batch, _ in results]
        return np.stack([labels for labels, _, _ in results])

    def receive_chunk(self, data: bytes, sent_wall: float) -> None:
        """Handle one upload; trains when a round is due, then pushes the packet to the edge."""
        chunk = SampleChunk.from_bytes(data)
        before = (self.session.stats.duplicate_chunks, self.session.stats.missing_chunks)
        rate = self.session.receive(chunk)
        self.metrics.errors.count("duplicate_chunk", self.session.stats.duplicate_chunks - before[0])
        self.metrics.errors.count("missing_chunk", self.session.stats.missing_chunks - before[1])
        self.edge.set_sampling_rate.remote(rate)
        now = chunk.times_s[-1]
        if not self.session.due(now):
            return
        asked = time.time()
        ray.get(self.coordinator.acquire.remote(self.stream_id))
        waited = time.time() - asked
        self.metrics.device_wait.observe(waited)
        try:
            began = time.perf_counter()
            result = self.session.train(now)
            seconds = time.perf_counter() - began
        finally:
            self.coordinator.release.remote(self.stream_id)
        self.train_seconds += seconds
        self.metrics.training.observe(seconds)
        return_free_heap()  # an idle trainer should not keep its last round's activations
        if result.skipped:
            self.metrics.errors.count("skipped_round")
        if result.packet is not None:
            # Waited on, so an upload's reply means its packet is on the device: the edge's
            # final report, which awaits every upload, then counts every packet it was sent.
            ray.get(self.edge.deliver.remote(result.packet, sent_wall))

    def stats(self) -> dict:
        s = self.session.stats
        return {"stream_id": self.stream_id, "rounds": s.rounds, "skipped_rounds": s.skipped_rounds,
                "chunks": s.chunks, "frames_labelled": s.frames_labelled, "duplicate_chunks": s.duplicate_chunks,
                "missing_chunks": s.missing_chunks, "train_seconds": self.train_seconds,
                "teacher_batches": self.teacher_batches,
                "node_id": ray.get_runtime_context().get_node_id(), "memory_mb": own_memory_mb()}
