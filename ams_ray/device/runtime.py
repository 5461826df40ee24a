"""The student as the device runs it: an ONNX Runtime session patched by update packets.

The graph is exported with every weight and BatchNorm statistic as a graph *input* (see
`onnx_export`), so applying a packet is an in-place add on numpy arrays the device feeds
each run: no session rebuild, no graph rewrite. This module must never import torch: a
torch process costs ~430 MB here, and the edge emulation runs one of these per device.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from ams_ray.wire.codec import PacketError, ParamLayout, UpdatePacket, apply_deltas, decode_packet

log = logging.getLogger(__name__)
FRAMES_INPUT = "frames"
_BUNDLE_MAGIC = b"AMSB"
_BUNDLE_PREFIX = struct.Struct("<4sII")  # magic, header length, ONNX length


@dataclass(frozen=True)
class DeviceModelBundle:
    """What the server sends a device once at start: graph, pretrained weights, layout.

    `trainable` lists the state entries an update may touch (the others, such as BatchNorm
    statistics, stay as shipped). Plain bytes and arrays, so any transport can carry it.
    """

    onnx_bytes: bytes
    state: dict[str, np.ndarray]
    trainable: tuple[str, ...]
    num_classes: int

    @property
    def layout(self) -> ParamLayout:
        return ParamLayout.from_arrays({n: self.state[n] for n in self.trainable})

    def to_bytes(self) -> bytes:
        """One self-describing blob (header, ONNX graph, weights as .npz), for a device that
        fetches its model over HTTP; `from_bytes` refuses anything else."""
        header = json.dumps({"trainable": list(self.trainable), "num_classes": self.num_classes}).encode()
        weights = io.BytesIO()
        np.savez(weights, **self.state)
        return _BUNDLE_PREFIX.pack(_BUNDLE_MAGIC, len(header), len(self.onnx_bytes)) + header + self.onnx_bytes \
            + weights.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeviceModelBundle":
        if len(data) < _BUNDLE_PREFIX.size or data[:4] != _BUNDLE_MAGIC:
            raise ValueError("not an ams-ray model bundle (bad magic): the download is corrupt or from another server")
        _, header_len, onnx_len = _BUNDLE_PREFIX.unpack_from(data)
        start = _BUNDLE_PREFIX.size
        header = json.loads(data[start:start + header_len])
        onnx_bytes = data[start + header_len:start + header_len + onnx_len]
        with np.load(io.BytesIO(data[start + header_len + onnx_len:]), allow_pickle=False) as weights:
            state = {name: weights[name] for name in weights.files}
        return cls(onnx_bytes, state, tuple(header["trainable"]), int(header["num_classes"]))


class DeviceModel:
    """Segments frames with the current model and applies packets in order."""

    def __init__(self, bundle: DeviceModelBundle, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(bundle.onnx_bytes, options, providers=["CPUExecutionProvider"])
        expected = {i.name for i in self._session.get_inputs()} - {FRAMES_INPUT}
        if expected != set(bundle.state):
            missing = sorted(expected - set(bundle.state))[:3]
            raise ValueError(f"model bundle lacks graph inputs {missing}; it was exported from another model")
        self.layout = bundle.layout
        self.num_classes = bundle.num_classes
        self._pretrained = {n: np.ascontiguousarray(a, dtype=np.float32) for n, a in bundle.state.items()}
        self._feeds = {n: a.copy() for n, a in self._pretrained.items()}
        self._trainable = [self._feeds[n] for n in self.layout.names]
        self.version = 0
        self.last_sequence = -1

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB -> uint8 (N, H, W) class ids."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"edge model needs uint8 frames shaped (N, H, W, 3), got {frames.dtype} {frames.shape}")
        return self._session.run(None, {FRAMES_INPUT: frames, **self._feeds})[0]

    def _reset_to_pretrained(self) -> None:
        for name in self.layout.names:
            np.copyto(self._feeds[name], self._pretrained[name])

    def apply(self, data: bytes | UpdatePacket) -> UpdatePacket:
        """Apply a packet; raises PacketError (and changes nothing) if it must not be applied."""
        packet = decode_packet(data, self.layout) if isinstance(data, bytes) else data
        if packet.fingerprint != self.layout.fingerprint:
            raise PacketError(f"packet is for model {packet.fingerprint}, this device runs {self.layout.fingerprint}")
        if packet.sequence <= self.last_sequence:
            raise PacketError(f"packet {packet.sequence} is a duplicate or stale (last applied {self.last_sequence})")
        if packet.base_version not in (0, self.version):
            raise PacketError(
                f"packet {packet.sequence} patches model version {packet.base_version}, the device holds "
                f"version {self.version}: an earlier packet was lost; the server must resend from version 0"
            )
        if packet.base_version == 0:
            self._reset_to_pretrained()
        apply_deltas(self._trainable, packet.tensors)
        self.version, self.last_sequence = packet.version, packet.sequence
        log.debug("applied packet %d: %d coordinates, now version %d", packet.sequence, packet.num_coords, self.version)
        return packet
