from ams_ray.service.log_retention import Retention


def _labelled(r: Retention, segment: int, sequence: int, times: tuple[float, ...]) -> None:
    r.accepted(segment, sequence, times)
    r.labelled(sequence)


def test_labelled_chunks_stay_while_any_frame_is_inside_the_window():
    r = Retention(horizon_s=10.0)
    for segment, t in enumerate(range(0, 30, 2), start=1):
        _labelled(r, segment, segment, (float(t), t + 1.0))
    newest = 29.0
    assert [c.last_s for c in r.live_chunks()] == [t + 1.0 for t in range(0, 30, 2) if t + 1.0 >= newest - 10.0]
    assert r.oldest_live_segment(next_segment=99) == r.live_chunks()[0].segment


def test_a_chunk_waiting_for_labels_stays_until_labelled_or_dropped_however_old():
    r = Retention(horizon_s=10.0)
    r.accepted(1, 1, (0.0, 1.0))
    r.accepted(2, 2, (2.0, 3.0))
    _labelled(r, 3, 3, (50.0, 51.0))
    assert [c.sequence for c in r.live_chunks()] == [1, 2] + [3] and r.oldest_live_segment(9) == 1
    r.dropped(1)
    assert r.oldest_live_segment(9) == 2


def test_a_clock_that_goes_back_starts_a_new_window():
    r = Retention(horizon_s=100.0)
    _labelled(r, 1, 1, (50.0, 51.0))
    _labelled(r, 2, 2, (3.0, 4.0))
    assert [c.segment for c in r.live_chunks()] == [2]


def test_packets_stay_from_the_newest_that_starts_from_the_pretrained_model_or_snapshot():
    r = Retention(horizon_s=10.0)
    r.packet(1, 1, base_version=0, nbytes=100)
    r.packet(2, 2, base_version=1, nbytes=50)
    assert r.chain_bytes == 150 and r.oldest_live_segment(10) == 1
    r.packet(3, 3, base_version=0, nbytes=70)
    assert r.chain_bytes == 70 and r.oldest_live_segment(10) == 3
    r.packet(4, 4, base_version=1, nbytes=30)
    r.snapshot(4)
    assert r.chain_bytes == 0 and r.oldest_live_segment(10) == 10
