import pytest

from ams_ray.service import rate_limit
from ams_ray.service.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_the_rate_holds(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rate_limit.time, "monotonic", clock)
    limiter = RateLimiter(per_second=2.0, burst=3)
    assert [limiter.retry_after_s("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.retry_after_s("a") == pytest.approx(0.5)
    assert limiter.retry_after_s("b") == 0.0  # budgets are per device
    clock.now += 0.5
    assert limiter.retry_after_s("a") == 0.0
    assert limiter.retry_after_s("a") > 0.0
    clock.now += 60.0  # an idle device gets its burst back, never more
    assert [limiter.retry_after_s("a") for _ in range(4)].count(0.0) == 3


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        RateLimiter(0.0, 3)
    with pytest.raises(ValueError):
        RateLimiter(1.0, 0)
