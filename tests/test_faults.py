import pytest

from ams_ray.fleet.faults import Fault, fault_outcomes


def test_fault_specs_parse_and_print_back():
    assert Fault.parse("kill-trainer:stream-001@22") == Fault("kill-trainer", 22.0, "stream-001")
    assert Fault.parse("kill-teacher@35.5") == Fault("kill-teacher", 35.5)
    assert str(Fault.parse("kill-edge:cam-7@3")) == "kill-edge:cam-7@3"


@pytest.mark.parametrize("text, message", [
    ("kill-trainer@5", "needs :STREAM"), ("kill-teacher:stream-1@5", "takes no stream"),
    ("reboot:stream-1@5", "use kill-trainer"), ("kill-edge:stream-1", "use kill-trainer"),
])
def test_bad_fault_specs_say_what_is_accepted(text, message):
    with pytest.raises(ValueError, match=message):
        Fault.parse(text)


def test_recovery_is_the_wait_for_the_next_applied_packet_or_labelled_chunk():
    edges = [{"stream_id": "s1", "applied_wall": [100.0, 111.0, 125.0]}, {"stream_id": "s2", "applied_wall": [104.0]}]
    trainers = [{"stream_id": "s1", "labelled_wall": [101.0, 140.0], "resumed_from_packet": 1},
                {"stream_id": "s2", "labelled_wall": [131.0]}]
    fired = [(Fault("kill-trainer", 5.0, "s1"), 105.0), (Fault("kill-teacher", 20.0), 120.0),
             (Fault("kill-edge", 6.0, "s2"), 106.0)]
    trainer, teacher, edge = fault_outcomes(fired, edges, trainers)
    assert trainer == {"fault": "kill-trainer:s1@5", "at_s": 5.0, "stream": "s1", "recovered_s": 6.0,
                       "updates_after": 2, "resumed_from_packet": 1}
    assert teacher["recovered_s"] == 11.0 and teacher["updates_after"] is None
    assert edge["recovered_s"] is None and edge["updates_after"] == 0
