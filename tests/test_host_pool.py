import pytest

from ams_ray.service.host_pool import PoolSizer, ScaleRange


def test_scale_ranges_parse_and_refuse_by_name():
    assert ScaleRange.parse("3") == ScaleRange(3, 3) and ScaleRange.parse(3).fixed
    assert ScaleRange.parse("2..8") == ScaleRange(2, 8) and str(ScaleRange(2, 8)) == "2..8"
    for bad in ("0", "4..2", "two", "2-8"):
        with pytest.raises(ValueError, match="--hosts"):
            ScaleRange.parse(bad, "--hosts")


def test_the_pool_grows_with_streams_per_host_and_stops_at_its_maximum():
    sizer = PoolSizer(ScaleRange(2, 4), streams_per_host=8)
    assert sizer.target(2, 16, 0.0) == 2
    assert sizer.target(2, 17, 0.0) == 3
    assert sizer.target(4, 100, 0.0) == 4


def test_the_pool_shrinks_only_after_a_sustained_lull_and_never_below_its_minimum():
    sizer = PoolSizer(ScaleRange(2, 6), streams_per_host=8, shrink_after_s=60.0)
    assert sizer.target(4, 3, 0.0) == 4
    assert sizer.target(4, 32, 30.0) == 4  # load came back: the lull starts over
    assert sizer.target(4, 3, 40.0) == 4
    assert sizer.target(4, 3, 99.0) == 4
    assert sizer.target(4, 3, 100.0) == 3
    assert sizer.target(2, 0, 1000.0) == 2 and sizer.target(2, 0, 2000.0) == 2
    assert sizer.target(1, 0, 0.0) == 2  # below the minimum (a host was lost): grow back
