import numpy as np
import pytest

from ams_ray.wire.stream_records import Progress
from ams_ray.wire.stream_state import StreamState, StreamStateError


def _state() -> StreamState:
    rng = np.random.default_rng(1)
    progress = Progress(packet_sequence=5, version=4, chunk_sequence=9, sampling_rate_fps=0.7,
                        training_period_factor=2, next_training_due_s=40.0,
                        rng_state=np.random.default_rng(5).bit_generator.state, counters={"rounds": 3})
    return StreamState(stream_id="cam-3", fingerprint="abc", progress=progress,
                       mirror=[rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=7).astype(np.float32)])


def test_a_snapshot_round_trips_exactly():
    state = _state()
    back = StreamState.from_bytes(state.to_bytes())
    assert back.progress == state.progress and back.stream_id == "cam-3"
    assert all(np.array_equal(a, b) for a, b in zip(back.mirror, state.mirror))
    rng = np.random.default_rng()
    rng.bit_generator.state = back.progress.rng_state
    assert rng.integers(1 << 30) == np.random.default_rng(5).integers(1 << 30)


def test_damaged_or_foreign_bytes_are_refused_with_a_reason():
    data = bytearray(_state().to_bytes())
    with pytest.raises(StreamStateError, match="truncated or corrupt"):
        StreamState.from_bytes(bytes(data[:-10]))
    data[-5] ^= 0xFF
    with pytest.raises(StreamStateError, match="checksum"):
        StreamState.from_bytes(bytes(data))
    with pytest.raises(StreamStateError, match="bad magic"):
        StreamState.from_bytes(b"PK\x03\x04 a zip file")
    old = bytearray(_state().to_bytes())
    old[4] = 1  # a whole-window checkpoint of the previous format
    with pytest.raises(StreamStateError, match="format 1, this build reads 2"):
        StreamState.from_bytes(bytes(old))
