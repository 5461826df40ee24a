"""A TrainerHost holding two streams, driven directly with real chunks, the real Serve teacher
and the real coordinator on a loopback Ray cluster."""

import time

import numpy as np
import pytest
import ray
from ray import serve

from actors.coordinator import start_coordinator
from actors.trainer import TrainerHost
from ams_ray.config import AmsConfig
from ams_ray.data.datasets import SyntheticSpec
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.data.video import encode_chunk
from ams_ray.models.student_spec import StudentSpec
from ams_ray.models.students import build_student
from ams_ray.service.trainer_settings import TrainerSettings
from ams_ray.wire.codec import ParamLayout, decode_packet
from ams_ray.wire.messages import SampleChunk
from serve.teacher import APP_NAME, teacher_app

FPS = 15
SPECS = {"stream-a": SyntheticSpec(61, 40.0, 64, 128), "stream-b": SyntheticSpec(62, 40.0, 64, 128)}


def _chunks(stream_id: str, count: int) -> list[bytes]:
    """Chunk k holds one frame a second of video seconds [10(k-1), 10k), as an edge sends them."""
    spec = SPECS[stream_id]
    video = SyntheticVideo(spec.seed, duration_s=spec.duration_s, fps=FPS, height=spec.height, width=spec.width)
    chunks = []
    for k in range(1, count + 1):
        indices = [FPS * s for s in range(10 * (k - 1), 10 * k)]
        frames = np.stack([video.frame(i) for i in indices])
        chunks.append(SampleChunk(stream_id, k, tuple(indices), tuple(i / FPS for i in indices),
                                  encode_chunk(frames)).to_bytes())
    return chunks


@pytest.fixture(scope="module")
def teacher_and_coordinator(ray_local):
    serve.start(http_options={"host": "127.0.0.1"})
    teacher = serve.run(teacher_app("oracle", num_cpus=0.5), name=APP_NAME, route_prefix=None)
    coordinator = start_coordinator("test-trainer-coordinator", "round_robin", 120.0)
    yield teacher, "test-trainer-coordinator"
    ray.kill(coordinator)
    serve.delete(APP_NAME)


@pytest.fixture
def host(teacher_and_coordinator, tmp_path):
    """A fresh host holding stream-a and stream-b, checkpointing under tmp_path."""
    teacher, coordinator = teacher_and_coordinator
    config = AmsConfig.for_profile("cpu").with_overrides(video={"height": 64, "width": 128},
                                                         training={"iterations": 3})
    settings = TrainerSettings(str(tmp_path / "store"), None, 120.0)
    actor = TrainerHost.options(num_cpus=0.5, max_restarts=1).remote(
        "trainer-t", [(sid, spec.key) for sid, spec in SPECS.items()], StudentSpec("tiny"), NUM_CLASSES,
        config.model_dump_json(), "ams_gg10", teacher, coordinator, settings)
    ray.get(actor.ready.remote(), timeout=300)
    yield actor
    ray.kill(actor)


def test_each_stream_keeps_its_own_order_state_and_packets(host):
    """Three chunks of each stream sent at once: each stream's arrive in order (no chunk
    counted duplicate or missing), and each stream gets its own packet for its due round."""
    student = build_student("tiny", NUM_CLASSES)
    layout = ParamLayout(tuple(n for n, _ in student.named_parameters()),
                         tuple(tuple(p.shape) for _, p in student.named_parameters()))
    refs = {sid: [host.receive_chunk.remote(sid, c) for c in _chunks(sid, 3)] for sid in SPECS}
    replies = {sid: ray.get(r, timeout=300) for sid, r in refs.items()}
    stats = {s["stream_id"]: s for s in ray.get(host.stats.remote(), timeout=60)["streams"]}
    for sid in SPECS:
        assert (stats[sid]["chunks"], stats[sid]["duplicate_chunks"], stats[sid]["missing_chunks"]) == (3, 0, 0)
        packets = [decode_packet(p, layout) for _, p in replies[sid] if p is not None]
        assert len(packets) == stats[sid]["rounds"] >= 1
        assert [p.stream_id for p in packets] == [sid] * len(packets)
        assert [p.sequence for p in packets] == list(range(1, len(packets) + 1))


def test_a_stream_the_host_does_not_hold_is_refused_by_name(host):
    with pytest.raises(ray.exceptions.RayTaskError, match="does not hold stream 'stream-z'"):
        ray.get(host.receive_chunk.remote("stream-z", _chunks("stream-a", 1)[0]), timeout=60)


def _stats_after_restart(host, attempts: int = 60) -> dict:
    """The kill reaches the old process through Ray's control plane, a method call directly:
    under load the old process can still answer the first calls after `ray.kill`."""
    for _ in range(attempts):
        report = ray.get(host.stats.remote(), timeout=300)
        if report["restarted"]:
            break
        time.sleep(1.0)
    return report


def test_a_restarted_host_resumes_every_stream_it_held(host):
    """After each stream's device applied packet 1, the host is killed; Ray restarts it and
    both streams come back from their own checkpoints."""
    for sid in SPECS:
        replies = [ray.get(host.receive_chunk.remote(sid, c), timeout=300) for c in _chunks(sid, 2)]
        assert replies[-1][1] is not None, "chunk 2 closes the first training period"
        ray.get(host.acknowledge.remote(sid, 1, 1), timeout=60)
    before = {s["stream_id"]: s["checkpoint"]["written"] for s in ray.get(host.stats.remote(), timeout=60)["streams"]}
    assert before == {"stream-a": 1, "stream-b": 1}
    ray.kill(host, no_restart=False)
    report = _stats_after_restart(host)
    assert report["restarted"]
    assert {s["stream_id"]: s["resumed_from_packet"] for s in report["streams"]} == {"stream-a": 1, "stream-b": 1}
