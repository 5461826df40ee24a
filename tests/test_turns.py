import pytest

from ams_ray.service.turns import TurnBook


def _book(lease_s: float = 60.0) -> TurnBook:
    book = TurnBook("round_robin", lease_s)
    for stream in "abc":
        book.register(stream, "gpu0", 1, f"{stream}-1", now=0.0)
    return book


def test_a_restarted_holder_hands_its_turn_to_the_next_in_line():
    book = _book()
    assert book.request("a", "a-1", 0.0) is True
    assert book.request("b", "b-1", 0.0) is False and book.request("c", "c-1", 0.0) is False
    assert book.register("a", "gpu0", 1, "a-2", now=5.0) == ["b"], "a's new process frees the dead one's turn"
    assert book.release("a", "a-1", 6.0) == [], "the dead process's release is ignored"
    assert book.release("b", "b-1", 7.0) == ["c"]


def test_a_restarted_stream_leaves_the_queue_it_waited_in():
    book = _book()
    book.request("a", "a-1", 0.0)
    book.request("b", "b-1", 0.0)
    book.request("c", "c-1", 0.0)
    assert book.register("b", "gpu0", 1, "b-2", now=1.0) == []
    assert book.request("b", "b-1", 1.0) is None, "the replaced process cannot ask any more"
    assert book.release("a", "a-1", 2.0) == ["c"], "b's dead request no longer holds its place"


def test_a_turn_whose_holder_never_returns_lapses_after_its_lease():
    book = _book(lease_s=30.0)
    book.request("a", "a-1", 0.0)
    book.request("b", "b-1", 0.0)
    assert book.expire(29.0) == []
    assert book.expire(30.0) == ["b"] and book.reclaimed == 1
    assert book.expiries["b"] == 60.0, "the next holder's lease starts when it is granted"


def test_leases_must_be_positive():
    with pytest.raises(ValueError, match="lease must be positive"):
        TurnBook("round_robin", 0.0)
