import pytest

from ams_ray.datasets import SyntheticSpec, VideoFile
from ams_ray.fleet_plan import FleetConfig, default_deadline_s, plan_fleet


def test_the_embedded_default_plans_one_synthetic_seed_per_stream_by_value():
    plan = plan_fleet(FleetConfig(clients=3, duration_s=60.0, seed_base=10), [{"CPU": 2.0}])
    assert [s.stream_id for s in plan.streams] == ["stream-010", "stream-011", "stream-012"]
    assert plan.streams[1].video == SyntheticSpec(11, 60.0, 128, 256)
    assert plan.streams[1].label_key == "synthetic:11:60:128x256"
    assert plan.trainer["CPU"] * 3 + plan.teacher["CPU"] + plan.edge["CPU"] * 3 <= 2.0
    assert plan.deadline_s == default_deadline_s(60.0, 1.0) == 240.0


def test_roles_place_trainers_and_teacher_on_server_nodes_and_edges_on_edge_nodes():
    nodes = [{"CPU": 4.0, "edge": 8.0}, {"CPU": 8.0, "GPU": 1.0, "server": 8.0}]
    plan = plan_fleet(FleetConfig(clients=4), nodes)
    assert "server" in plan.trainer and "server" in plan.teacher and "edge" in plan.edge
    assert plan.trainer["GPU"] == 0.25


def test_each_run_checkpoints_under_its_own_id(tmp_path):
    config = FleetConfig(clients=1, checkpoint_store=f"{tmp_path}/")
    first, second = plan_fleet(config, [{"CPU": 2.0}]), plan_fleet(config, [{"CPU": 2.0}])
    assert first.trainer_settings.checkpoint_url.startswith(f"{tmp_path}/run-")
    assert first.trainer_settings.checkpoint_url != second.trainer_settings.checkpoint_url


def test_real_videos_travel_as_bytes_one_per_client():
    videos = [VideoFile("a.mp4", b"\x00" * 8), VideoFile("b.mp4", b"\x01" * 8)]
    plan = plan_fleet(FleetConfig(clients=2), [{"CPU": 2.0}], videos)
    assert [s.video.name for s in plan.streams] == ["a.mp4", "b.mp4"] and plan.streams[0].label_key is None
    with pytest.raises(ValueError, match="one video per client"):
        plan_fleet(FleetConfig(clients=3), [{"CPU": 2.0}], videos)
