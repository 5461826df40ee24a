import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from ray import serve

from actors.teacher_client import label_with_retry
from ams_ray.fleet.faults import Fault
from serve.fault_injection import inject, teacher_replicas
from serve.teacher import APP_NAME, teacher_app


@pytest.fixture
def teacher(ray_local):
    """Deploys a teacher app (call with its spec and options); deleted after the test."""
    serve.start(http_options={"host": "127.0.0.1"})

    def deploy(spec, **options):
        return serve.run(teacher_app(spec, num_cpus=0.5, **options), name=APP_NAME, route_prefix=None)

    yield deploy
    serve.delete(APP_NAME)


def test_teacher_batches_frames_from_concurrent_callers(teacher, short_video):
    from ams_ray.data.synthetic import SyntheticVideo

    handle = teacher("oracle", max_batch_size=8, batch_wait_s=0.1)
    truth = SyntheticVideo(7, duration_s=40.0, fps=15.0, height=64, width=128)
    frame = np.zeros((64, 128, 3), np.uint8)  # the oracle regenerates labels from (seed, index): pixels unused
    responses = [handle.label.remote((short_video.label_key, i, frame)) for i in range(32)]
    results = [r.result(timeout_s=60) for r in responses]
    for i, (labels, _, _) in enumerate(results):
        assert np.array_equal(labels, truth.labels(i))
    batch_sizes = [batch for _, batch, _ in results]
    assert np.mean(batch_sizes) > 1 and max(batch_sizes) <= 8
    assert handle.num_classes.remote(short_video.label_key).result(timeout_s=60) == 7


def test_the_network_teacher_labels_the_pixels_it_is_sent(teacher, short_video, tmp_path):
    """The same video key and frame index with other pixels gets other labels: the deployment
    runs the model on the frames, unlike the oracle above. Its weights file is gone before the
    replica starts: the weights travel as bytes, as they must to a node without the file."""
    import torch

    from ams_ray.data.synthetic import SyntheticVideo
    from ams_ray.models.teacher_network import TeacherNet
    from ams_ray.teach.teacher_spec import TeacherSpec

    torch.manual_seed(0)
    weights = tmp_path / "teacher.pt"
    torch.save(TeacherNet().state_dict(), weights)
    spec = TeacherSpec.read(f"network:{weights}")
    weights.unlink()
    handle = teacher(spec, max_batch_size=8, batch_wait_s=0.05)
    frame = SyntheticVideo(7, duration_s=40.0, fps=15.0, height=64, width=128).frame(5)
    inverted = 255 - frame
    first, second, again = (handle.label.remote((short_video.label_key, 5, f)).result(timeout_s=120)[0]
                            for f in (frame, inverted, frame))
    assert first.shape == (64, 128) and np.array_equal(first, again)
    assert not np.array_equal(first, second)


def test_an_autoscaled_teacher_adds_a_replica_under_load_and_stops_at_its_bound(teacher, short_video):
    """One replica at 2 s a batch of 1 and twelve requests queued (24 s of work): Serve adds the
    second replica it may have (asked to react within a second or two) and never a third."""
    handle = teacher("tests.teacher_plugins:slow_colour", max_batch_size=1, batch_wait_s=0.0, replicas=1,
                     max_replicas=2, autoscaling={"upscale_delay_s": 0.0, "metrics_interval_s": 0.5,
                                                  "look_back_period_s": 2.0})
    assert len(teacher_replicas()) == 1
    frame = np.zeros((64, 128, 3), np.uint8)
    pending = [handle.label.remote((short_video.label_key, i, frame)) for i in range(12)]
    most = 1
    for reply in pending:  # while the queue drains, count the live replicas
        reply.result(timeout_s=120)
        most = max(most, len(teacher_replicas()))
    assert most == 2
    (deployment,) = serve.status().applications[APP_NAME].deployments.values()
    assert deployment.status == "HEALTHY"


def test_a_bad_request_fails_alone_and_its_batch_mates_get_labels(teacher, short_video):
    handle = teacher("oracle", max_batch_size=8, batch_wait_s=0.2)
    frame = np.zeros((64, 128, 3), np.uint8)
    requests = [("/data/camera.mp4" if i == 3 else short_video.label_key, i, frame) for i in range(8)]
    responses = [handle.label.remote(r) for r in requests]
    for i, response in enumerate(responses):
        if i == 3:
            with pytest.raises(Exception, match="oracle' needs exact labels"):
                response.result(timeout_s=60)
        else:
            labels, batch, _ = response.result(timeout_s=60)
            assert labels.shape == (64, 128) and batch > 1


def test_requests_in_flight_on_a_killed_replica_are_retried_on_its_replacement(teacher):
    """The slow teacher takes 2 s a batch; its replica is killed inside the first batch, which
    holds a plain request (it fails) and a retrying caller's requests (they get labels)."""
    handle = teacher("tests.teacher_plugins:slow_colour", max_batch_size=8, batch_wait_s=0.2)
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 64, 3), dtype=np.uint8)
    requests = [(None, i, f) for i, f in enumerate(frames)]
    (before,) = teacher_replicas()
    with ThreadPoolExecutor(1) as pool:
        retrying = pool.submit(asyncio.run, label_with_retry(handle, requests, 120.0))
        plain = handle.label.remote(requests[0])
        time.sleep(1.0)  # inside the 2 s batch (not an assertion: only where the kill lands)
        inject(Fault("kill-teacher", 1.0), {}, {})
        with pytest.raises(Exception):
            plain.result(timeout_s=60)  # what a caller without the retry sees
        results = retrying.result(timeout=300)
    assert not any(isinstance(r, Exception) for r in results)
    from tests.teacher_plugins import ColourTeacher

    expected = ColourTeacher().label(frames)
    assert all(np.array_equal(r[0], e) for r, e in zip(results, expected)), "labels come from the pixels"
    assert teacher_replicas() and teacher_replicas() != [before], "Serve replaced the killed replica"


def test_a_replica_whose_teacher_keeps_failing_is_replaced(teacher):
    handle = teacher("tests.teacher_plugins:broken", max_batch_size=2, batch_wait_s=0.01)
    (before,) = teacher_replicas()
    frame = np.zeros((8, 8, 3), np.uint8)
    for i in range(3):  # three failed batches in a row make check_health fail
        with pytest.raises(Exception, match="this teacher's model is broken"):
            handle.label.remote((None, i, frame)).result(timeout_s=60)
    for _ in range(120):  # Serve checks health every 10 s; bounded wait, not a timed assertion
        if teacher_replicas() not in ([], [before]):
            break
        time.sleep(1.0)
    assert teacher_replicas() not in ([], [before])


def test_training_requests_overtake_waiting_scoring_requests_and_scoring_is_shed(teacher):
    """The slow teacher (2 s a batch of 4) has 12 scoring frames queued when 4 training frames
    come: at most one batch of scoring is labelled before them (the one already running), and
    scoring frames that then waited more than 3 s behind training are shed with ScoringShed."""
    from ams_ray.teach.label_queue import ScoringShed

    handle = teacher("tests.teacher_plugins:slow_colour", max_batch_size=4, batch_wait_s=0.05,
                     max_scoring_wait_s=3.0)
    frame = np.zeros((16, 16, 3), np.uint8)
    scoring = [handle.label.remote((None, i, frame), "scoring") for i in range(12)]
    for _ in range(120):  # every scoring request is at the replica before training is asked
        if handle.load.remote().result(timeout_s=60)["arrived"]["scoring"] == 12:
            break
        time.sleep(0.5)
    training = [handle.label.remote((None, 100 + i, frame), "training") for i in range(4)]
    for response in training:
        assert response.result(timeout_s=120)[1] == 4
    outcomes = []
    for response in scoring:
        try:
            outcomes.append(response.result(timeout_s=120)[1])
        except ScoringShed:
            outcomes.append("shed")
    load = handle.load.remote().result(timeout_s=60)
    batches = load["recent_batches"]
    assert ("training", 4) in batches[:2], f"training waited behind more than the running batch: {batches}"
    assert outcomes.count("shed") == load["shed"] >= 1 and all(o == "shed" or o <= 4 for o in outcomes)
