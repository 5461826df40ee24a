import numpy as np
import pytest

from ams_ray.wire.stream_state import StreamState, StreamStateError


def _state(frames: int = 3) -> StreamState:
    rng = np.random.default_rng(1)
    return StreamState(
        stream_id="cam-3", fingerprint="abc", version=4, packet_sequence=5, chunk_sequence=9,
        mirror=[rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=7).astype(np.float32)],
        sampling_rate_fps=0.7, training_period_factor=2, next_training_due_s=40.0,
        rng_state=np.random.default_rng(5).bit_generator.state,
        window_times_s=np.arange(frames, dtype=np.float64),
        window_frames=rng.integers(0, 255, (frames, 8, 16, 3), dtype=np.uint8),
        window_labels=rng.integers(0, 7, (frames, 8, 16), dtype=np.uint8),
        last_label=np.ones((8, 16), np.uint8), counters={"rounds": 3},
    )


def test_a_state_round_trips_exactly():
    state = _state()
    back = StreamState.from_bytes(state.to_bytes())
    assert (back.stream_id, back.version, back.packet_sequence, back.chunk_sequence) == ("cam-3", 4, 5, 9)
    assert all(np.array_equal(a, b) for a, b in zip(back.mirror, state.mirror))
    assert np.array_equal(back.window_frames, state.window_frames)
    assert np.array_equal(back.window_labels, state.window_labels) and np.array_equal(back.last_label, state.last_label)
    assert back.counters == {"rounds": 3} and back.training_period_factor == 2
    rng = np.random.default_rng()
    rng.bit_generator.state = back.rng_state
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
