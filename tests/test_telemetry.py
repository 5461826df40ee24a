"""The metric catalogue follows Prometheus naming conventions and keeps labels bounded."""

import re

from ams_ray.telemetry import BY_NAME, CATALOGUE, exported_series

UNITS = ("_seconds", "_bytes", "_ratio", "_frames_per_second", "_size", "_requests", "_chunks",
         "_score")  # a score: a scheduler's unitless ranking
BOUNDED_LABELS = {"stream", "deployment", "component", "kind", "purpose", "outcome"}  # outcome: 5 values


def test_names_are_unique_snake_case_and_prefixed():
    assert len(BY_NAME) == len(CATALOGUE)
    for m in CATALOGUE:
        assert re.fullmatch(r"ams_[a-z0-9_]+", m.name), m.name


def test_counters_end_in_total_and_everything_else_names_its_unit():
    for m in CATALOGUE:
        if m.kind == "counter":
            assert m.name.endswith("_total"), m.name
        else:
            assert m.name.endswith(UNITS) and not m.name.endswith("_total"), m.name


def test_labels_are_bounded_and_histograms_have_sorted_buckets():
    for m in CATALOGUE:
        assert set(m.tags) <= BOUNDED_LABELS, m.name
        if m.kind == "histogram":
            assert list(m.boundaries) == sorted(set(m.boundaries)) and m.boundaries, m.name
        else:
            assert not m.boundaries, m.name


def test_exported_series_carry_rays_prefix_and_histogram_suffixes():
    series = exported_series()
    assert "ray_ams_stream_uplink_bytes_total" in series
    assert {"ray_ams_teacher_latency_seconds_bucket", "ray_ams_teacher_latency_seconds_count",
            "ray_ams_teacher_latency_seconds_sum"} <= series
    assert "ray_ams_teacher_latency_seconds" not in series
