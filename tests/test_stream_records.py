import numpy as np

from ams_ray.wire.stream_records import ChunkLabels, LoggedPacket, Progress


def _progress() -> Progress:
    return Progress(packet_sequence=3, version=2, chunk_sequence=7, sampling_rate_fps=0.5, training_period_factor=2,
                    next_training_due_s=70.0, rng_state=np.random.default_rng(9).bit_generator.state,
                    counters={"chunks": 7, "rounds": 3})


def test_progress_and_a_packet_round_trip_exactly_and_progress_stays_small():
    logged = LoggedPacket(b"AMSU\x01 a packet as sent", _progress())
    back = LoggedPacket.from_bytes(logged.to_bytes())
    assert back == logged and len(_progress().to_json()) < 600


def test_labels_round_trip_and_a_dropped_chunk_carries_none():
    labels = np.random.default_rng(0).integers(0, 7, (2, 8, 16), dtype=np.uint8)
    back = ChunkLabels.from_bytes(ChunkLabels(12, labels).to_bytes())
    assert back.sequence == 12 and np.array_equal(back.labels, labels)
    assert ChunkLabels.from_bytes(ChunkLabels(13, None).to_bytes()) == ChunkLabels(13, None)
