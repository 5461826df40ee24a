import os

import numpy as np
import pytest

from ams_ray.data.video import encode_chunk
from ams_ray.service.untrusted_chunks import ChunkLimits, ChunkRejected, IsolatedDecoder, count_frames, parse_envelope
from ams_ray.wire.messages import SampleChunk

H, W = 32, 64
LIMITS = ChunkLimits(H, W, max_frames=8, max_bytes=64 * 1024)


def _frames(n: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 255, (n, h, w, 3), dtype=np.uint8)


def _chunk(n: int = 3, stream: str = "cam-a", h264: bytes | None = None) -> SampleChunk:
    return SampleChunk(stream, 1, tuple(range(n)), tuple(float(i) for i in range(n)),
                       h264 if h264 is not None else encode_chunk(_frames(n)))


def test_a_good_chunk_passes():
    chunk = parse_envelope(_chunk().to_bytes(), "cam-a", LIMITS)
    assert count_frames(chunk.h264, 3, H, W) == 3


@pytest.mark.parametrize("data, kind, message", [
    (b"GET / HTTP/1.1", "corrupt_chunk", "bad magic"),
    (b"AMSC\x05\x00\x00\x00{nope", "corrupt_chunk", "not a sample chunk"),
    (b"x" * (64 * 1024 + 1), "oversized_chunk", "exceeds the limit"),
])
def test_garbage_is_refused_by_kind(data, kind, message):
    with pytest.raises(ChunkRejected, match=message) as refused:
        parse_envelope(data, "cam-a", LIMITS)
    assert refused.value.kind == kind


def test_the_envelope_must_name_the_stream_and_a_bounded_frame_count():
    with pytest.raises(ChunkRejected, match="names stream 'cam-b'") as refused:
        parse_envelope(_chunk(stream="cam-b").to_bytes(), "cam-a", LIMITS)
    assert refused.value.kind == "wrong_stream"
    with pytest.raises(ChunkRejected, match="1 to 8 frames"):
        parse_envelope(_chunk(9).to_bytes(), "cam-a", LIMITS)
    lying = SampleChunk("cam-a", 1, (0, 1), (0.0,), b"")
    with pytest.raises(ChunkRejected, match="malformed"):
        parse_envelope(lying.to_bytes(), "cam-a", LIMITS)


def test_the_bitstream_must_match_its_envelope_and_the_frame_size():
    with pytest.raises(ChunkRejected, match="envelope says 2") as refused:
        count_frames(encode_chunk(_frames(3)), 2, H, W)
    assert refused.value.kind == "corrupt_chunk"
    with pytest.raises(ChunkRejected, match="frames are 64x64") as refused:
        count_frames(encode_chunk(_frames(2, 64, 64)), 2, H, W)
    assert refused.value.kind == "wrong_frame_shape"
    with pytest.raises(ChunkRejected, match="does not decode|holds 0 frames"):
        count_frames(b"\x00\x00\x00\x01" + bytes(range(256)) * 4, 2, H, W)


def crashing_decoder(h264: bytes, expected: int, height: int, width: int) -> int:
    """FFmpeg segfaulting on a crafted bitstream, as the worker process sees it."""
    if h264.startswith(b"CRASH"):
        os.abort()
    return count_frames(h264, expected, height, width)


def test_a_decoder_crash_costs_one_chunk_and_the_next_decodes():
    decoder = IsolatedDecoder(LIMITS, crashing_decoder)
    try:
        decoder.check(_chunk())
        first = decoder.pid()
        with pytest.raises(ChunkRejected, match="decoder process died") as refused:
            decoder.check(_chunk(h264=b"CRASH"))
        assert refused.value.kind == "decoder_crashed" and decoder.restarts == 1
        decoder.check(_chunk())
        assert decoder.pid() not in (None, first)
        with pytest.raises(ChunkRejected, match="frames are"):
            decoder.check(_chunk(h264=encode_chunk(_frames(3, 64, 64))))
    finally:
        decoder.close()


def hanging_decoder(h264: bytes, expected: int, height: int, width: int) -> int:
    """A bitstream that sends the decoder into a loop."""
    if h264.startswith(b"HANG"):
        import time

        time.sleep(3600)
    return count_frames(h264, expected, height, width)


def test_a_hanging_decoder_is_replaced_after_its_timeout():
    decoder = IsolatedDecoder(ChunkLimits(H, W, max_frames=8, decode_timeout_s=2.0), hanging_decoder)
    try:
        with pytest.raises(ChunkRejected, match="decoding took over 2 s") as refused:
            decoder.check(_chunk(h264=b"HANG"))
        assert refused.value.kind == "decoder_timeout" and decoder.restarts == 1
        decoder.check(_chunk())
    finally:
        decoder.close()
