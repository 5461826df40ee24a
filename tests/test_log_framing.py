import pytest

from ams_ray.wire.log_framing import LogDamaged, frame, parse

RECORDS = [(1, b"first chunk"), (2, b""), (1, bytes(range(40)))]
SEGMENT = b"".join(frame(kind, payload) for kind, payload in RECORDS)


def test_records_come_back_in_order():
    parsed = parse(SEGMENT, "seg-1", newest=False)
    assert parsed.records == RECORDS and parsed.complete_bytes == len(SEGMENT) and not parsed.torn


def test_a_tail_cut_at_every_byte_keeps_exactly_the_whole_records_before_it():
    ends = [len(b"".join(frame(k, p) for k, p in RECORDS[:n])) for n in range(len(RECORDS) + 1)]
    for cut in range(len(SEGMENT)):
        parsed = parse(SEGMENT[:cut], "seg-1", newest=True)
        whole = max(n for n, end in enumerate(ends) if end <= cut)
        assert parsed.records == RECORDS[:whole], cut
        assert parsed.complete_bytes == ends[whole] and parsed.torn == (cut != ends[whole])


def test_a_cut_anywhere_but_the_newest_segment_is_damage():
    with pytest.raises(LogDamaged, match="seg-1 is damaged at byte 41: it ends inside a record"):
        parse(SEGMENT[:-3], "seg-1", newest=False)


def test_a_flipped_bit_at_any_byte_is_refused_by_name_even_in_the_newest_segment():
    for offset in range(len(SEGMENT)):
        damaged = bytearray(SEGMENT)
        damaged[offset] ^= 0x04
        with pytest.raises(LogDamaged, match=r"segment seg-7 of stream cam is damaged at byte \d+: .*checksum"):
            parse(bytes(damaged), "seg-7 of stream cam", newest=True)
