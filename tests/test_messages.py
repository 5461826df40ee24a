import pytest

from ams_ray.wire.messages import SampleChunk


def test_chunk_envelope_round_trips_and_counts_its_bytes():
    chunk = SampleChunk("cam-7", 4, (10, 25), (0.66, 1.66), b"\x00\x00\x00\x01h264")
    data = chunk.to_bytes()
    assert SampleChunk.from_bytes(data) == chunk
    assert chunk.num_bytes == len(data) > len(chunk.h264)


def test_foreign_bytes_are_refused():
    with pytest.raises(ValueError, match="not an ams-ray sample chunk"):
        SampleChunk.from_bytes(b"GET / HTTP/1.1")
