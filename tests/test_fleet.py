import time

import pytest

from actors.fleet import FleetConfig, run_fleet
from ams_ray.fleet_report import summarize
from ams_ray.placement import PlacementError


def test_streams_adapt_end_to_end_on_packed_fractional_gpus(ray_local, cache_dir):
    config = FleetConfig(clients=2, duration_s=30.0, speed=2.0, cache_dir=cache_dir, seed_base=500,
                         teacher_cpus=0.5)
    result = run_fleet(config)
    assert {n["NodeManagerAddress"] for n in ray_local.nodes()} == {"127.0.0.1"}
    assert result.failed == {}
    assert not any(edge["torch_loaded"] for edge in result.edges), "edges must never import torch"
    summary = summarize(result.edges, result.trainers, result.failed, 2, result.wall_s, 2.0,
                        result.memory_samples_gib)
    assert summary["completed"] == 2
    for edge in result.edges:
        assert edge["frames"] == 450 and edge["updates_applied"] >= 2
        assert 0 < edge["uplink_kbps"] < 200 and 0 < edge["downlink_kbps"] < 200
        assert len(edge["staleness_s"]) == edge["updates_applied"]
    assert summary["p95_staleness_s"] < 10.0
    assert all(t["rounds"] >= 2 for t in result.trainers)
    # both trainers asked for 1/2 of the single logical GPU and share it, taking turns (round_robin)
    assert len(set(result.coordinator["devices"].values())) == 1
    assert next(iter(result.coordinator["devices"].values())).endswith(":gpu0")


def test_impossible_request_fails_within_seconds(ray_local, cache_dir):
    began = time.time()
    with pytest.raises(PlacementError, match=r"asked for 4 GPU in all \(8 trainers x 0.5 GPU\) but the cluster has 1"):
        run_fleet(FleetConfig(clients=8, duration_s=10.0, gpus_per_trainer=0.5, cache_dir=cache_dir))
    assert time.time() - began < 10


def test_model_teachers_need_cached_labels_for_scoring(ray_local):
    with pytest.raises(ValueError, match="extract-labels"):
        run_fleet(FleetConfig(clients=1, teacher="torchvision:deeplabv3_resnet50:cache"))


@pytest.mark.slow
def test_eight_streams_adapt_and_keep_up_at_half_speed(ray_local, cache_dir):
    """About 3 minutes: eight 60 s streams on the default scheduler, scored like the benchmark."""
    result = run_fleet(FleetConfig(clients=8, duration_s=60.0, speed=0.5, cache_dir=cache_dir, seed_base=600,
                                   gpus_per_trainer=0.0, cpus_per_trainer=0.25))
    summary = summarize(result.edges, result.trainers, result.failed, 8, result.wall_s, 0.5,
                        result.memory_samples_gib)
    assert summary["completed"] == 8 and result.failed == {}
    assert all(edge["updates_applied"] >= 4 for edge in result.edges)
    assert summary["mean_miou_gain"] > 3.0
    assert summary["keeps_up"], summary["p95_staleness_video_s"]
