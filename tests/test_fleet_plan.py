import pytest

from ams_ray.data.datasets import SyntheticSpec, VideoFile
from ams_ray.fleet.plan import FleetConfig, default_deadline_s, plan_fleet, send_phases


def test_the_embedded_default_plans_one_synthetic_seed_per_stream_by_value():
    plan = plan_fleet(FleetConfig(clients=3, duration_s=60.0, seed_base=10), [{"CPU": 2.0}])
    assert [s.stream_id for s in plan.streams] == ["stream-010", "stream-011", "stream-012"]
    assert plan.streams[1].video == SyntheticSpec(11, 60.0, 128, 256)
    assert plan.streams[1].label_key == "synthetic:11:60:128x256"
    assert plan.trainer["CPU"] * len(plan.hosts) + plan.teacher["CPU"] + plan.edge["CPU"] * len(plan.edge_hosts) <= 2.0
    assert plan.deadline_s == default_deadline_s(60.0, 1.0) == 240.0


def test_roles_place_trainers_and_teacher_on_server_nodes_and_edges_on_edge_nodes():
    nodes = [{"CPU": 4.0, "edge": 8.0}, {"CPU": 8.0, "GPU": 1.0, "server": 8.0}]
    plan = plan_fleet(FleetConfig(clients=4), nodes)
    assert "server" in plan.trainer and "server" in plan.teacher and "edge" in plan.edge
    assert plan.trainer["GPU"] == 1.0 and [len(h.stream_ids) for h in plan.hosts] == [4]


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


def test_streams_are_pooled_one_host_per_core_or_per_gpu_by_default():
    cpu = plan_fleet(FleetConfig(clients=32), [{"CPU": 2.0}])
    assert [len(h.stream_ids) for h in cpu.hosts] == [16, 16] and not cpu.trainer_settings.fused
    assert sorted(s for h in cpu.hosts for s in h.stream_ids) == [s.stream_id for s in cpu.streams]
    gpu = plan_fleet(FleetConfig(clients=64), [{"CPU": 16.0, "GPU": 2.0}])
    assert [len(h.stream_ids) for h in gpu.hosts] == [32, 32] and gpu.trainer["GPU"] == 1.0
    assert gpu.trainer_settings.fused, "fused by default where the hosts have GPUs"
    assert gpu.training_cores == 0, "one host per GPU: no cores to count"


def test_one_stream_per_trainer_on_request_or_with_a_gpu_fraction():
    per_stream = plan_fleet(FleetConfig(clients=5, streams_per_trainer=1), [{"CPU": 2.0}])
    assert len(per_stream.hosts) == 5 and per_stream.demands[0].count == 5
    fractions = plan_fleet(FleetConfig(clients=4, gpus_per_trainer=0.25), [{"CPU": 4.0, "GPU": 1.0}])
    assert len(fractions.hosts) == 4 and fractions.trainer["GPU"] == 0.25
    uneven = plan_fleet(FleetConfig(clients=7, streams_per_trainer=3), [{"CPU": 2.0}])
    assert [len(h.stream_ids) for h in uneven.hosts] == [3, 3, 1]


def test_send_phases_are_seeded_and_spread_unless_in_lockstep():
    phases = send_phases(64, 10.0, seed=0, lockstep=False)
    assert phases == send_phases(64, 10.0, seed=0, lockstep=False) != send_phases(64, 10.0, seed=1, lockstep=False)
    assert all(0.0 < p <= 10.0 for p in phases) and max(phases) - min(phases) > 8.0
    assert send_phases(3, 10.0, seed=0, lockstep=True) == [10.0] * 3


def test_an_autoscaled_teacher_is_placed_for_its_most_replicas():
    nodes = [{"CPU": 2.0}]
    fixed = plan_fleet(FleetConfig(clients=2, teacher_replicas=1), nodes)
    scaled = plan_fleet(FleetConfig(clients=2, teacher_replicas=1, teacher_max_replicas=3), nodes)
    assert [d.count for d in fixed.demands if d.role == "teacher replica"] == [1]
    assert [d.count for d in scaled.demands if d.role == "teacher replica"] == [3]
    assert scaled.trainer["CPU"] < fixed.trainer["CPU"], "the replicas it may add are kept free"
    with pytest.raises(ValueError, match="teacher_max_replicas 1 is below teacher_replicas 2"):
        plan_fleet(FleetConfig(clients=2, teacher_replicas=2, teacher_max_replicas=1), nodes)


def test_emulated_devices_are_pooled_one_edge_process_per_core_unless_asked_otherwise():
    pooled = plan_fleet(FleetConfig(clients=256), [{"CPU": 2.0}])
    assert [len(h.stream_ids) for h in pooled.edge_hosts] == [128, 128]
    assert sorted(s for h in pooled.edge_hosts for s in h.stream_ids) == [s.stream_id for s in pooled.streams]
    assert pooled.edge["CPU"] == 0.2 and pooled.demands[1].count == 2, "capped: 256 devices place on 2 cores"
    assert pooled.trainer["CPU"] * 2 + pooled.teacher["CPU"] + pooled.edge["CPU"] * 2 <= 2.0
    on_edge_nodes = plan_fleet(FleetConfig(clients=10), [{"CPU": 4.0, "edge": 1.0}, {"CPU": 8.0, "server": 1.0}])
    assert [len(h.stream_ids) for h in on_edge_nodes.edge_hosts] == [3, 3, 3, 1], "the edge node's 4 cores"
    assert pooled.training_cores == 2 and on_edge_nodes.training_cores == 8, "the server node's cores, not the edges'"
    alone = plan_fleet(FleetConfig(clients=3, devices_per_edge_host=1), [{"CPU": 2.0}])
    assert len(alone.edge_hosts) == 3
    http = plan_fleet(FleetConfig(clients=3, transport="http"), [{"CPU": 2.0}])
    assert len(http.edge_hosts) == 3, "the standalone HTTP client plays one device per process"
    with pytest.raises(ValueError, match="one per process"):
        plan_fleet(FleetConfig(clients=3, transport="http", devices_per_edge_host=2), [{"CPU": 2.0}])
    with pytest.raises(ValueError, match="at least 1"):
        plan_fleet(FleetConfig(clients=3, devices_per_edge_host=0), [{"CPU": 2.0}])


def test_a_scene_mix_gives_each_stream_its_kind_from_the_seed_and_the_scheduler_reaches_the_hosts():
    config = FleetConfig(clients=8, scene_mix="static:0.25,slow:0.5,fast:0.25", scheduler="gain",
                         fairness_floor_periods=3.0, hibernate_gain=3.0)
    plan = plan_fleet(config, [{"CPU": 2.0}])
    kinds = [s.video.scenes for s in plan.streams]
    assert sorted(kinds).count("static") == 2 and kinds.count("slow") == 4
    assert kinds == [s.video.scenes for s in plan_fleet(config, [{"CPU": 2.0}]).streams]
    assert plan.streams[0].label_key.endswith(f":{kinds[0]}") or kinds[0] == "mixed"
    settings = plan.trainer_settings
    assert (settings.scheduler, settings.fairness_floor_periods, settings.hibernate_gain) == ("gain", 3.0, 3.0)
    with pytest.raises(ValueError, match="real videos have the scenes they have"):
        plan_fleet(FleetConfig(clients=1, scene_mix="fast"), [{"CPU": 2.0}], [VideoFile("a.mp4", b"\x00")])
