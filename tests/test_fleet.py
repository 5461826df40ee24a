"""Fleets on a real loopback Ray cluster: the data path end to end, and what each fault costs."""

import shutil

import pytest
import torch

from ams_ray.data.datasets import SyntheticSpec
from ams_ray.fleet.faults import Fault, fault_outcomes
from ams_ray.fleet.placement import PlacementError
from ams_ray.fleet.plan import FleetConfig
from ams_ray.fleet.report import http_figures, machine_memory, summarize
from ams_ray.models.students import build_student
from serve.fleet import run_fleet


def test_streams_adapt_end_to_end_in_one_host_on_the_gpu(ray_local, cache_dir, tmp_path):
    """On a (logical) GPU both streams share one trainer host, which fuses their rounds. The
    teacher labels pixels (a weak colour model), so the truth and the teacher differ."""
    config = FleetConfig(clients=2, duration_s=30.0, speed=2.0, cache_dir=cache_dir, seed_base=500,
                         teacher="tests.teacher_plugins:colour", teacher_cpus=0.5,
                         checkpoint_store=str(tmp_path / "store"), lockstep=True)
    result = run_fleet(config)
    assert {n["NodeManagerAddress"] for n in ray_local.nodes()} == {"127.0.0.1"}
    assert result.failed == {}
    assert not any(edge["torch_loaded"] for edge in result.edges), "edges must never import torch"
    summary = summarize(result.edges, result.trainers, result.failed, 2, result.wall_s, 2.0,
                        machine_memory(result.node_memory, result.started_wall), hosts=result.hosts,
                        teacher=config.teacher, server_cpu_s=result.server_cpu_s)
    assert summary["completed"] == 2 and summary["scored"] == 2
    assert summary["teacher"] == "tests.teacher_plugins:colour" and 0 < summary["teacher_miou"] < 90
    assert summary["mean_miou_vs_teacher"] != summary["mean_miou"]
    assert summary["teacher_busy_fraction"] > 0 and summary["teacher_eval_frames_per_s"] > 0
    assert 0 < summary["teacher_cpu_share"] < 1
    assert set(result.server_cpu_s) == {"teacher", "trainers"} and result.server_cpu_s["trainers"] > 0
    assert summary["peak_memory_gib"] >= summary["baseline_memory_gib"] > 0
    for edge in result.edges:
        assert edge["frames"] == 450 and edge["updates_applied"] >= 2
        assert 0 < edge["uplink_kbps"] < 200 and 0 < edge["downlink_kbps"] < 200
        assert len(edge["staleness_s"]) == len(edge["applied_wall"]) == edge["updates_applied"]
    assert all(t["rounds"] >= 2 and not t["restarted"] for t in result.trainers)
    assert all(t["checkpoint"]["written"] >= 1 for t in result.trainers), "a checkpoint after an applied packet"
    assert set(result.setup_s) == {"teacher", "trainers", "edges", "videos", "total"}
    (host,) = result.hosts
    assert {s["stream_id"] for s in host["streams"]} == {"stream-500", "stream-501"} and host["fused"]
    assert 0 < host["steps"] <= sum(t["rounds"] for t in result.trainers)
    assert host["memory_mb"]["pss_mb"] > 0
    assert list(result.coordinator["accelerators"].values()) == [result.coordinator["accelerators"]["trainer-00"]]
    assert result.coordinator["accelerators"]["trainer-00"].endswith(":gpu0")


def test_devices_over_http_adapt_through_the_ingress(ray_local, cache_dir, tmp_path):
    """`--transport http`: each device runs the standalone client with its own token against
    the ingress on Serve's proxy, which routes to the hosts the fleet placed."""
    import socket

    from ray import serve

    serve.shutdown()  # an earlier run's proxy keeps its port; this one needs a free one of its own
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        port, taken = a.getsockname()[1], b.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": taken})
    with pytest.raises(RuntimeError, match=f"already listens on port {taken}, not {port}"):
        run_fleet(FleetConfig(clients=1, transport="http", ingress_port=port, cache_dir=cache_dir))
    serve.shutdown()
    config = FleetConfig(clients=2, duration_s=30.0, speed=2.0, cache_dir=cache_dir, seed_base=530,
                         teacher="tests.teacher_plugins:colour", teacher_cpus=0.5, transport="http",
                         ingress_port=port, checkpoint_store=str(tmp_path / "store"))
    result = run_fleet(config)
    assert result.failed == {}
    summary = {**summarize(result.edges, result.trainers, result.failed, 2, result.wall_s, 2.0, {}),
               **http_figures(result.edges)}
    assert summary["completed"] == summary["scored"] == 2 and summary["transport"] == "http"
    assert summary["http_overhead_ratio"] > 1.0 and summary["http_chunk_latency_p95_s"] > 0
    assert summary["http_retries"] == 0
    for edge in result.edges:
        assert edge["frames"] == 450 and edge["updates_applied"] >= 2 and not edge["torch_loaded"]
        assert len(edge["staleness_s"]) == edge["updates_applied"] and min(edge["staleness_s"]) > 0
    assert all(t["rounds"] >= 2 and t["checkpoint"]["written"] >= 1 for t in result.trainers)
    assert set(result.server_cpu_s) == {"teacher", "trainers", "ingress"} and result.server_cpu_s["ingress"] > 0
    assert result.machine_cpu_s > sum(result.server_cpu_s.values())


def test_a_teacher_slower_than_the_call_timeout_still_updates_every_stream(ray_local, cache_dir, tmp_path):
    """Labels take 12 s a batch against a 10 s call timeout. Uploads are answered once the
    chunk is taken and packets are polled from the outbox, so no call waits on labelling:
    every stream applies updates, no upload times out, no packet is lost, and the report
    shows how long labels took."""
    config = FleetConfig(clients=2, duration_s=30.0, speed=1.0, cache_dir=cache_dir, seed_base=540,
                         teacher="tests.teacher_plugins:lagging_colour", teacher_cpus=0.5, teacher_batch=32,
                         teacher_eval_every=1000, call_timeout_s=10.0, lockstep=True,
                         checkpoint_store=str(tmp_path / "store"))
    result = run_fleet(config)
    assert result.failed == {}
    summary = summarize(result.edges, result.trainers, result.failed, 2, result.wall_s, 1.0, {}, hosts=result.hosts)
    assert summary["streams_without_update"] == 0 and summary["upload_timeouts"] == 0
    assert summary["p95_label_wait_s"] > config.call_timeout_s  # labels came later than any call may wait
    for edge in result.edges:
        assert edge["updates_applied"] >= 1, edge["stream_id"]
        assert edge["rejected_packets"] == [] and edge["packets_missed"] == 0 and edge["upload_errors"] == []
        assert min(edge["staleness_s"]) > config.call_timeout_s
    for trainer in result.trainers:
        applied = next(e["updates_applied"] for e in result.edges if e["stream_id"] == trainer["stream_id"])
        assert trainer["packets_posted"] == applied, "every packet made was applied"
    assert summary["packets_undelivered"] == 0


def test_impossible_request_fails_before_anything_starts(ray_local, cache_dir):
    with pytest.raises(PlacementError, match=r"asked for 4 GPU in all \(8 trainer hosts x 0.5 GPU\) but the cluster has 1"):
        run_fleet(FleetConfig(clients=8, duration_s=10.0, gpus_per_trainer=0.5, cache_dir=cache_dir))


def test_a_trainer_that_cannot_start_is_reported_at_once_with_its_own_error(ray_local, cache_dir, tmp_path):
    """Weights for another class set: the file travels as bytes and fails in the host's constructor."""
    seven_to_three = tmp_path / "three-class-weights.pt"
    torch.save(build_student("tiny:scratch", 3).state_dict(), seven_to_three)
    with pytest.raises(RuntimeError, match=r"a trainer host failed to start: .*three-class-weights\.pt do not fit"):
        run_fleet(FleetConfig(clients=2, duration_s=10.0, student=f"tiny:{seven_to_three}", cache_dir=cache_dir,
                              checkpoint_store=str(tmp_path / "store")))


def test_a_missing_weights_file_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found: .*no-such-weights.pt"):
        run_fleet(FleetConfig(clients=2, duration_s=10.0, student=f"tiny:{tmp_path / 'no-such-weights.pt'}"))


@pytest.fixture(scope="module")
def faulted_run(ray_local, cache_dir, tmp_path_factory):
    """Three streams; the trainer of one is killed after its first checkpoint, another's edge
    (the device) is killed, and the teacher's replica is killed mid-run."""
    store = tmp_path_factory.mktemp("checkpoints")
    faults = [Fault.parse("kill-trainer:stream-700@14"), Fault.parse("kill-edge:stream-701@10"),
              Fault.parse("kill-teacher@20")]
    config = FleetConfig(clients=3, duration_s=45.0, speed=1.5, cache_dir=cache_dir, seed_base=700,
                         teacher_cpus=0.5, checkpoint_store=str(store), faults=faults, devices_per_edge_host=1)
    result = run_fleet(config)
    return result, {o["fault"]: o for o in fault_outcomes(result.faults, result.edges, result.trainers)}


def test_a_killed_trainer_host_resumes_all_its_streams_from_their_checkpoints(faulted_run):
    """All three streams share one host (one logical GPU); killing "stream-700's trainer"
    kills the host, and every stream it held resumes, the bystander 702 included."""
    result, outcomes = faulted_run
    assert "stream-700" not in result.failed
    assert len(result.hosts) == 1 and result.hosts[0]["restarted"]
    bystander = next(t for t in result.trainers if t["stream_id"] == "stream-702")
    assert bystander["restarted"] and bystander["rounds"] >= 2
    trainer = next(t for t in result.trainers if t["stream_id"] == "stream-700")
    assert trainer["restarted"]
    assert outcomes["kill-trainer:stream-700@14"]["updates_after"] >= 1
    assert outcomes["kill-trainer:stream-700@14"]["recovered_s"] is not None
    for sid in ("stream-700", "stream-702"):
        edge = next(e for e in result.edges if e["stream_id"] == sid)
        assert edge["rejected_packets"] == [], "no packet after the restart disagreed with the device"


def test_a_killed_edge_fails_its_stream_alone(faulted_run):
    result, _ = faulted_run
    assert set(result.failed) == {"stream-701"}
    assert "stream-701" not in {e["stream_id"] for e in result.edges}
    assert {e["stream_id"] for e in result.edges} == {"stream-700", "stream-702"}


def test_a_killed_teacher_replica_is_replaced_and_labelling_resumes(faulted_run):
    result, outcomes = faulted_run
    assert outcomes["kill-teacher@20"]["recovered_s"] is not None, "a chunk was labelled after the kill"
    survivor = next(e for e in result.edges if e["stream_id"] == "stream-702")
    assert survivor["updates_applied"] >= 2 and survivor["frames"] == 675


def test_an_unwritable_checkpoint_store_is_reported_and_streams_go_on(ray_local, cache_dir, tmp_path):
    blocker = tmp_path / "store"
    blocker.write_text("a file where the checkpoint directory should be")
    result = run_fleet(FleetConfig(clients=1, duration_s=30.0, speed=2.0, cache_dir=cache_dir, seed_base=510,
                                   teacher_cpus=0.5, checkpoint_store=str(blocker)))
    assert result.failed == {} and result.edges[0]["updates_applied"] >= 2
    checkpoint = result.trainers[0]["checkpoint"]
    assert checkpoint["written"] == 0
    assert "cannot write the checkpoint of stream-510" in checkpoint["error"] and str(blocker) in checkpoint["error"]


def test_a_corrupt_video_fails_its_stream_alone(ray_local, cache_dir, tmp_path):
    """Real files with their truth labels, shipped as bytes (the label directory is deleted
    once the streams start, before any frame is scored); a pixel teacher. Both devices share
    one edge process, and the broken one fails alone. The good stream is scored against its
    truth and the teacher apart."""
    good = SyntheticSpec(520, 30.0, 128, 256).materialize(cache_dir).path
    truth = tmp_path / "truth"
    shutil.copytree(good.parent / "labels", truth)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(good.read_bytes()[:2000])  # a truncated upload of a real file
    config = FleetConfig(clients=2, duration_s=30.0, speed=2.0, cache_dir=cache_dir, seed_base=520,
                         teacher="tests.teacher_plugins:colour", teacher_cpus=0.5, videos=[good, broken],
                         truth=[truth, truth], checkpoint_store=str(tmp_path / "store"), devices_per_edge_host=2)
    result = run_fleet(config, on_started=lambda edges, trainers: shutil.rmtree(truth))
    assert not truth.exists()
    assert set(result.failed) == {"stream-521"}
    assert "broken.mp4" in result.failed["stream-521"] and "corrupt" in result.failed["stream-521"]
    (edge,) = result.edges
    assert edge["stream_id"] == "stream-520" and edge["frames"] == 450 and edge["updates_applied"] >= 2
    assert edge["devices_in_process"] == 2
    assert edge["miou"] != edge["pretrained_miou"] and 0 < edge["teacher_miou"] < 90 and edge["miou_vs_teacher"] != edge["miou"]


@pytest.mark.slow
def test_eight_streams_adapt_at_half_speed(ray_local, cache_dir, tmp_path):
    """About 3 minutes: eight 60 s streams on the default scheduler, scored like the benchmark."""
    result = run_fleet(FleetConfig(clients=8, duration_s=60.0, speed=0.5, cache_dir=cache_dir, seed_base=600,
                                   gpus_per_trainer=0.0, cpus_per_trainer=0.25,
                                   checkpoint_store=str(tmp_path / "store")))
    summary = summarize(result.edges, result.trainers, result.failed, 8, result.wall_s, 0.5,
                        machine_memory(result.node_memory, result.started_wall), hosts=result.hosts)
    assert summary["completed"] == 8 and result.failed == {}
    assert all(edge["updates_applied"] >= 4 for edge in result.edges)
    assert summary["mean_miou_gain"] > 3.0


def test_the_gain_scheduler_spends_rounds_on_the_changing_cameras_and_bounds_every_wait(ray_local, cache_dir,
                                                                                      tmp_path):
    """Two fixed cameras and two whose scene changes every 20-40 s share one host (exact
    labels, so only the scheduler differs from run to run). A fixed camera's model soon
    agrees with the teacher and its stream hibernates, so most rounds go to the changing
    cameras; and no due round waits past the fairness floor plus the period it takes to be
    picked. All four devices play in one edge process."""
    floor = 2
    config = FleetConfig(clients=4, duration_s=80.0, speed=2.0, cache_dir=cache_dir, seed_base=540, teacher="oracle",
                         scheduler="gain", scene_mix="static:0.5,fast:0.5", fairness_floor_periods=floor,
                         fused=False, devices_per_edge_host=4, checkpoint_store=str(tmp_path / "store"))
    result = run_fleet(config)
    assert result.failed == {}
    kinds = {e["stream_id"]: SyntheticSpec.from_key(e["video"]).scenes for e in result.edges}
    assert sorted(kinds.values()) == ["fast", "fast", "static", "static"]
    rounds = {kind: sum(t["rounds"] for t in result.trainers if kinds[t["stream_id"]] == kind)
              for kind in kinds.values()}
    hibernated = {kind: sum(t["deferred_rounds"].get("hibernating", 0) for t in result.trainers
                            if kinds[t["stream_id"]] == kind) for kind in kinds.values()}
    assert rounds["fast"] > rounds["static"] and hibernated["static"] > hibernated["fast"], (rounds, hibernated)
    assert all(t["rounds"] >= 1 for t in result.trainers), "every camera was trained at least once"
    assert max(t["longest_round_wait_video_s"] for t in result.trainers) <= (floor + 1) * 10.0
    assert all(e["devices_in_process"] == 4 and e["updates_applied"] >= 1 for e in result.edges)
