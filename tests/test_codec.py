import numpy as np
import pytest

from ams_ray.wire.codec import (
    PacketError,
    ParamLayout,
    TensorDelta,
    UpdatePacket,
    decode_packet,
    encode_packet,
    varint_decode,
    varint_encode,
)

LAYOUT = ParamLayout(("conv.weight", "conv.bias", "head.weight"), ((64, 32, 3, 3), (64,), (7, 64, 1, 1)))


def _packet(rng, fraction=0.1, dense_bias=True) -> UpdatePacket:
    tensors = []
    for index in range(len(LAYOUT.names)):
        numel = LAYOUT.numel(index)
        if dense_bias and index == 1:
            tensors.append(TensorDelta(index, None, rng.normal(0, 1e-3, numel).astype(np.float32)))
            continue
        coords = np.sort(rng.choice(numel, size=max(1, int(fraction * numel)), replace=False))
        tensors.append(TensorDelta(index, coords, rng.normal(0, 1e-3, coords.size).astype(np.float32)))
    return UpdatePacket("cam-1", 3, 2, 3, LAYOUT.fingerprint, tensors, sampling_rate_fps=0.5)


def test_varints_round_trip_including_large_gaps():
    values = np.array([0, 1, 127, 128, 300, 16_383, 16_384, 2**31, 5], dtype=np.int64)
    assert varint_decode(varint_encode(values), values.size).tolist() == values.tolist()


@pytest.mark.parametrize("encoding,tolerance", [("ams", 1e-3), ("compact", 1 / 127 / 2 + 1e-6)])
def test_round_trip_to_the_encoding_precision(encoding, tolerance):
    packet = _packet(np.random.default_rng(0))
    decoded = decode_packet(encode_packet(packet, LAYOUT, encoding), LAYOUT)
    assert (decoded.stream_id, decoded.sequence, decoded.base_version, decoded.version) == ("cam-1", 3, 2, 3)
    assert decoded.sampling_rate_fps == 0.5
    for sent, got in zip(packet.tensors, decoded.tensors):
        assert got.index == sent.index
        if sent.coords is None:
            assert got.coords is None
        else:
            assert np.array_equal(got.coords, sent.coords)
        scale = np.abs(sent.values).max()
        assert np.abs(got.values - sent.values).max() <= tolerance * scale


def test_compact_beats_the_ams_layout():
    packet = _packet(np.random.default_rng(1), dense_bias=False)
    compact = encode_packet(packet, LAYOUT, "compact")
    ams = encode_packet(packet, LAYOUT, "ams")
    assert len(compact) < 0.8 * len(ams)


@pytest.mark.parametrize("encoding", ["ams", "compact"])
def test_corruption_is_detected(encoding):
    data = bytearray(encode_packet(_packet(np.random.default_rng(2)), LAYOUT, encoding))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(PacketError, match="checksum"):
        decode_packet(bytes(data), LAYOUT)
    with pytest.raises(PacketError, match="checksum|short"):
        decode_packet(bytes(data[:-10]), LAYOUT)
    with pytest.raises(PacketError, match="not an ams-ray update packet"):
        decode_packet(b"JUNK" + bytes(data[4:]), LAYOUT)


def test_packet_for_another_model_is_refused():
    data = encode_packet(_packet(np.random.default_rng(3)), LAYOUT)
    other = ParamLayout(LAYOUT.names, ((64, 32, 3, 3), (64,), (21, 64, 1, 1)))
    with pytest.raises(PacketError, match="different student architectures"):
        decode_packet(data, other)
