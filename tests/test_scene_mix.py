"""A fleet's mix of cameras: shares read from text, kinds given to streams deterministically."""

import pytest

from ams_ray.data.datasets import SyntheticSpec
from ams_ray.data.synthetic import SyntheticVideo, scene_range
from ams_ray.fleet.scene_mix import SceneMix


def test_shares_become_exact_counts_by_largest_remainder_in_a_seeded_order():
    mix = SceneMix.parse("static:0.25,slow:0.5,fast:0.25")
    assert mix.counts(8) == {"static": 2, "slow": 4, "fast": 2}
    assert mix.counts(7) == {"static": 2, "slow": 3, "fast": 2}, "remainders .75, .5, .75: the two largest round up"
    kinds = mix.kinds(8, seed=0)
    assert sorted(kinds) == sorted(["static"] * 2 + ["slow"] * 4 + ["fast"] * 2)
    assert mix.kinds(8, seed=0) == kinds, "the same seed gives the same fleet"
    assert any(mix.kinds(8, seed=s) != kinds for s in range(1, 6)), "another seed shuffles it"
    assert SceneMix.parse("static:1,fast:3").counts(4) == {"static": 1, "fast": 3}, "shares are normalised"
    assert SceneMix.parse("fast").kinds(3, 0) == ["fast"] * 3


@pytest.mark.parametrize("text, message", [("windy:1", "unknown scene kind 'windy'"),
                                           ("static:lots", "is not a number"),
                                           ("static:-1", "non-negative"), ("static:0", "gives no stream a kind")])
def test_a_bad_mix_is_refused_naming_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        SceneMix.parse(text)


def test_scene_kinds_change_scenes_as_often_as_they_say_and_travel_in_the_video_key():
    assert SyntheticVideo(3, duration_s=300.0, scene_range_s=scene_range("static")).scene_starts_s == [0.0]
    fast = SyntheticVideo(3, duration_s=300.0, scene_range_s=scene_range("fast")).scene_starts_s
    assert all(20.0 <= b - a <= 40.0 for a, b in zip(fast, fast[1:])) and len(fast) >= 7
    slow = SyntheticVideo(3, duration_s=300.0, scene_range_s=scene_range("slow")).scene_starts_s
    assert len(slow) <= 3
    spec = SyntheticSpec(3, 60.0, 64, 128, "fast")
    assert SyntheticSpec.from_key(spec.key) == spec
    assert SyntheticSpec.from_key(SyntheticSpec(3, 60.0, 64, 128).key).scenes == "mixed"
    assert SyntheticSpec(3, 60.0, 64, 128).key == "synthetic:3:60:64x128", "the default's key is unchanged"
    with pytest.raises(ValueError, match="unknown scene kind"):
        SyntheticSpec(3, 60.0, 64, 128, "windy")
