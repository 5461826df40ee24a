"""Online distillation of one stream's student, producing sparse update packets.

One `OnlineDistiller` per stream holds the student being trained, the pretrained weights,
and a *mirror* of what the device holds. Every round trains from the pretrained weights
(the original's default) or from the mirror, selects coordinates by the strategy, and
emits a packet of deltas. The mirror is then advanced by the *decoded* packet, so after
quantisation the server and the device still hold bit-identical weights.

Gradient-guided coordinate selection (AMS): probe one step on every trainable weight, keep
the `fraction` of coordinates it would move most (see `_select_coordinates`), then train
only those.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

from ams_ray.accuracy import frame_miou
from ams_ray.config import TrainingConfig
from ams_ray.device.runtime import DeviceModelBundle
from ams_ray.learn.chunk_scores import HeldModels
from ams_ray.learn.window import FrameWindow
from ams_ray.models.onnx_export import export_edge_bundle
from ams_ray.models.students import StudentNet, trainable_names
from ams_ray.wire.codec import (
    Encoding,
    PacketError,
    ParamLayout,
    TensorDelta,
    UpdatePacket,
    decode_packet,
    encode_packet,
)

log = logging.getLogger(__name__)
StrategyKind = Literal["full", "gradient_guided", "last_layers"]


@dataclass(frozen=True)
class Strategy:
    kind: StrategyKind = "gradient_guided"
    fraction: float = 0.10  # of trainable coordinates, for gradient_guided

    def __post_init__(self) -> None:
        if self.kind not in ("full", "gradient_guided", "last_layers"):
            raise ValueError(f"unknown strategy {self.kind!r}; use full, gradient_guided or last_layers")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")


@dataclass
class RoundResult:
    packet: bytes | None  # None when the round was skipped
    skipped: str | None
    loss: float
    coords: int
    duration_s: float


class OnlineDistiller:
    def __init__(
        self,
        model: StudentNet,
        training: TrainingConfig,
        strategy: Strategy,
        stream_id: str = "stream-0",
        encoding: Encoding = "compact",
        seed: int = 0,
        shadow_encoding: Encoding | None = None,
        device: str = "cpu",
    ) -> None:
        """`shadow_encoding` also encodes every update in a second format, only to record its
        size in `shadow_sizes`, so two packet formats are compared on identical updates."""
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)  # BatchNorm statistics stay frozen: batches are tiny, one scene
        self.training, self.strategy = training, strategy
        self.stream_id, self.encoding = stream_id, encoding
        self.shadow_encoding = shadow_encoding
        self.shadow_sizes: list[int] = []
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        names = trainable_names(model, last_layers_only=strategy.kind == "last_layers")
        params = dict(model.named_parameters())
        self.params = [params[n] for n in names]
        for name, p in params.items():
            p.requires_grad_(name in names)
        self.layout = ParamLayout(tuple(names), tuple(tuple(p.shape) for p in self.params))
        self.pretrained = [p.detach().clone() for p in self.params]
        self.mirror = [p.detach().clone() for p in self.params]
        self.version = 0
        self.sequence = 0
        self.at_pretrained = True  # the mirror is the pretrained model (a revert would change nothing)
        self.held = HeldModels()  # the device's last few versions, to score what it ran (chunk_scores)

    # ------------------------------------------------------------------ state
    @property
    def mirror_nbytes(self) -> int:
        """What the device's weights take as float32: a snapshot's size before compression."""
        return sum(p.numel() * 4 for p in self.params)

    def mirror_arrays(self) -> list[np.ndarray]:
        return [m.detach().cpu().numpy().copy() for m in self.mirror]

    def restore(self, mirror: list[np.ndarray], version: int, sequence: int) -> None:
        """Carry on from a snapshot (`StreamState`): same device model, same numbering."""
        if len(mirror) != len(self.params) or any(m.shape != p.shape for m, p in zip(mirror, self.params)):
            raise ValueError(f"stream {self.stream_id}: saved weights do not match the model's trainable tensors")
        self.mirror = [torch.from_numpy(np.array(m, dtype=np.float32)).to(self.device) for m in mirror]
        self.version, self.sequence = version, sequence
        self.at_pretrained = False
        self.held.reset(version, self.mirror)
        self._load(self.mirror)

    def replay(self, data: bytes) -> None:
        """Apply a packet this stream sent and its device acknowledged (from the stream's log):
        the mirror then holds what the device held after it. A packet that builds on a version
        the mirror does not hold cannot be replayed (PacketError)."""
        packet = decode_packet(data, self.layout)
        if packet.sequence <= self.sequence:
            return
        if packet.base_version not in (0, self.version):
            raise PacketError(f"stream {self.stream_id}: packet {packet.sequence} builds on version "
                              f"{packet.base_version}, the log rebuilt version {self.version}")
        self.sequence = packet.sequence
        self._advance_mirror(packet, restart=packet.base_version == 0)

    def reconcile(self, device_version: int, device_last_packet: int) -> bool:
        """Align with the model the device reports holding; True when the server resynchronised.

        A device ahead of the server (it applied packets this server does not remember, as
        after a resume from an older checkpoint) gets its next packet against version 0, which
        it applies from the pretrained weights: both sides then hold the same model again, and
        the packet numbering continues after the device's last packet so it is never refused
        as stale. A device behind is normal (a packet still in flight) and left alone.
        """
        if device_last_packet < self.sequence:
            return False
        if device_last_packet == self.sequence and device_version == self.version:
            return False
        log.warning("stream %s: device holds version %d (packet %d), server had %d (packet %d); resynchronising "
                    "from the pretrained model", self.stream_id, device_version, device_last_packet, self.version,
                    self.sequence)
        self.sequence = device_last_packet
        self.restart_from_pretrained()
        return True

    def restart_from_pretrained(self) -> None:
        """The device holds the pretrained model again (it resynchronised, or it started afresh and
        fetched it): so does the server, and its next packet applies to version 0."""
        self.mirror = [p.clone() for p in self.pretrained]
        self.version = 0
        self.at_pretrained = True
        self.held.reset(0, None)
        self._load(self.mirror)

    def frame_agreements(self, frames: np.ndarray, labels: np.ndarray,
                         weights: list[torch.Tensor] | None = None) -> list[float]:
        """mIoU (points) of each frame against `labels`, of `weights` (default: the mirror, the
        model the device holds); `ams_ray.learn.chunk_scores`. Called between this stream's
        rounds, when the model holds the mirror, which it holds again after."""
        if weights is not None:
            self._load(weights)
        try:
            with torch.no_grad():
                predicted = self.model(torch.from_numpy(frames).to(self.device)).argmax(1).cpu().numpy()
            return [frame_miou(p, t, self.model.num_classes) for p, t in zip(predicted, labels)]
        finally:
            if weights is not None:
                self._load(self.mirror)

    def revert(self) -> bytes:
        """A packet that puts the device back on the pretrained model: no deltas, against
        version 0. For a device whose adapted model fell behind the pretrained one (its scene
        changed) while its next round waits: a few bytes, and no training."""
        self.sequence += 1
        packet = UpdatePacket(stream_id=self.stream_id, sequence=self.sequence, base_version=0,
                              version=self.version + 1, fingerprint=self.layout.fingerprint, tensors=[])
        data = encode_packet(packet, self.layout, self.encoding)
        self._advance_mirror(decode_packet(data, self.layout), restart=True)
        return data

    def edge_bundle(self, height: int, width: int) -> DeviceModelBundle:
        """The pretrained model as the device receives it at start."""
        return export_edge_bundle(self.model, height, width, list(self.layout.names))

    # ------------------------------------------------------------------ training
    def _load(self, source: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, s in zip(self.params, source):
                p.copy_(s)

    def _batch(self, window: FrameWindow) -> tuple[torch.Tensor, torch.Tensor]:
        frames, labels = window.sample(self.rng, self.training.batch_size, self.training.recent_fraction,
                                       self.training.send_period_s)
        return torch.from_numpy(frames).to(self.device), torch.from_numpy(labels).to(self.device).long()

    def _loss(self, window: FrameWindow) -> torch.Tensor:
        frames, labels = self._batch(window)
        return F.cross_entropy(self.model(frames), labels)

    def _select_coordinates(self, window: FrameWindow, start: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """Boolean masks holding exactly `fraction` of the coordinates, or None for all.

        AMS keeps the coordinates that one Adam step moves most. That step is
        lr * g / (|g| + eps): monotone in |g| but, in float32, exactly lr for most
        coordinates, so ranking by the change itself is mostly ties. Ranking by |g| orders
        coordinates the same way without ties, and `topk` then picks exactly k of them.
        """
        if self.strategy.kind != "gradient_guided":
            return None
        loss = self._loss(window)
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss in the probing step")
        grads = torch.autograd.grad(loss, self.params)
        magnitude = torch.cat([g.abs().flatten() for g in grads])
        keep = max(1, int(round(self.strategy.fraction * magnitude.numel())))
        chosen = torch.zeros(magnitude.numel(), dtype=torch.bool, device=magnitude.device)
        chosen[torch.topk(magnitude, keep, sorted=False).indices] = True
        masks, offset = [], 0
        for p in self.params:
            masks.append(chosen[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        self._load(start)
        return masks

    def train_round(self, window: FrameWindow, sampling_rate_fps: float | None = None) -> RoundResult:
        """Run one training round on the window; never ships an update from a diverged run."""
        began = time.perf_counter()
        if len(window) == 0:
            return RoundResult(None, "no labelled frames yet", math.nan, 0, 0.0)
        start = self.pretrained if self.training.restart_from_pretrained else self.mirror
        self._load(start)
        loss_value = math.nan
        try:
            masks = self._select_coordinates(window, start)
            optimiser = torch.optim.Adam(self.params, lr=self.training.learning_rate)
            for iteration in range(self.training.iterations):
                loss = self._loss(window)
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"non-finite loss at iteration {iteration}")
                optimiser.zero_grad()
                loss.backward()
                if masks is not None:
                    for p, m in zip(self.params, masks):
                        p.grad.mul_(m)
                optimiser.step()
        except FloatingPointError as exc:
            self._load(self.mirror)
            log.warning("stream %s: skipped update (%s); the device keeps version %d", self.stream_id, exc, self.version)
            return RoundResult(None, str(exc), loss_value, 0, time.perf_counter() - began)
        packet, coords = self._packet(start, masks, sampling_rate_fps)
        return RoundResult(packet, None, loss_value, coords, time.perf_counter() - began)

    def train_once(self, window: FrameWindow, iterations: int) -> RoundResult:
        """A longer single round over the whole window, uniformly (the `one_time` baseline)."""
        original = self.training
        self.training = original.model_copy(update={"iterations": iterations, "recent_fraction": 0.0})
        try:
            return self.train_round(window)
        finally:
            self.training = original

    # ------------------------------------------------------------------ packets
    def _packet(
        self, start: list[torch.Tensor], masks: list[torch.Tensor] | None, rate: float | None
    ) -> tuple[bytes, int]:
        restart = self.training.restart_from_pretrained
        tensors = []
        for index, (p, s) in enumerate(zip(self.params, start)):
            delta = (p.detach() - s).flatten().cpu().numpy()
            if masks is None:
                tensors.append(TensorDelta(index, None, delta.astype(np.float32)))
                continue
            coords = np.flatnonzero(masks[index].flatten().cpu().numpy())
            if coords.size:
                tensors.append(TensorDelta(index, coords, delta[coords].astype(np.float32)))
        self.sequence += 1
        packet = UpdatePacket(
            stream_id=self.stream_id,
            sequence=self.sequence,
            base_version=0 if restart else self.version,
            version=self.version + 1,
            fingerprint=self.layout.fingerprint,
            tensors=tensors,
            sampling_rate_fps=rate,
        )
        data = encode_packet(packet, self.layout, self.encoding)
        if self.shadow_encoding:
            self.shadow_sizes.append(len(encode_packet(packet, self.layout, self.shadow_encoding)))
        self._advance_mirror(decode_packet(data, self.layout), restart)
        return data, packet.num_coords

    def _advance_mirror(self, packet: UpdatePacket, restart: bool) -> None:
        """Apply exactly what the device will apply, then train on from there."""
        base = self.pretrained if restart else self.mirror
        mirror = [b.clone() for b in base]
        for t in packet.tensors:
            flat = mirror[t.index].view(-1)
            values = torch.from_numpy(t.values).to(flat.device)
            if t.coords is None:
                flat += values
            else:
                flat[torch.from_numpy(t.coords).to(flat.device)] += values
        self.mirror = mirror
        self.version = packet.version
        self.at_pretrained = restart and not packet.tensors
        self.held.add(self.version, None if self.at_pretrained else self.mirror)
        self._load(self.mirror)
