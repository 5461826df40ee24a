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
from ams_ray.wire.codec import ParamLayout, decode_packet, packet_numbers
from ams_ray.wire.messages import SampleChunk
from serve.teacher import APP_NAME, teacher_app

FPS = 15
SPECS = {"stream-a": SyntheticSpec(61, 60.0, 64, 128), "stream-b": SyntheticSpec(62, 40.0, 64, 128)}


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
    settings = TrainerSettings(str(tmp_path / "store"), 120.0)
    actor = TrainerHost.options(num_cpus=0.5, max_restarts=1).remote(
        "trainer-t", [(sid, spec.key) for sid, spec in SPECS.items()], StudentSpec("tiny"), NUM_CLASSES,
        config.model_dump_json(), "ams_gg10", teacher, coordinator, settings)
    ray.get(actor.ready.remote(), timeout=300)
    yield actor
    ray.kill(actor)


def _settled(host, stream_ids, attempts: int = 300) -> None:
    """Wait (bounded) until the host has labelled and trained every chunk it accepted."""
    for _ in range(attempts):
        if not any(ray.get(host.stream_status.remote(sid), timeout=60)["pending"] for sid in stream_ids):
            return
        time.sleep(1.0)
    raise AssertionError(f"chunks still pending after {attempts} s")


def _packets(host, stream_id: str) -> list[tuple[int, bytes, int]]:
    """Every packet in the stream's outbox, oldest first, as a device polling from 0 gets them."""
    packets, after = [], 0
    while (reply := ray.get(host.next_packet.remote(stream_id, after, None, 0.5), timeout=60)) is not None:
        packets.append(reply)
        after = reply[0]
    return packets


def test_each_stream_keeps_its_own_order_state_and_packets(host):
    """Three chunks of each stream sent at once, each answered before it is labelled: each
    stream's are taken in order (no chunk counted duplicate or missing), and each stream's
    outbox holds its own packets for its due rounds."""
    student = build_student("tiny", NUM_CLASSES)
    layout = ParamLayout(tuple(n for n, _ in student.named_parameters()),
                         tuple(tuple(p.shape) for _, p in student.named_parameters()))
    refs = {sid: [host.submit_chunk.remote(sid, c) for c in _chunks(sid, 3)] for sid in SPECS}
    replies = {sid: ray.get(r, timeout=300) for sid, r in refs.items()}
    assert all(outcome == "accepted" and rate > 0 for sid in SPECS for outcome, rate in replies[sid])
    _settled(host, SPECS)
    stats = {s["stream_id"]: s for s in ray.get(host.stats.remote(), timeout=60)["streams"]}
    for sid in SPECS:
        assert (stats[sid]["chunks"], stats[sid]["duplicate_chunks"], stats[sid]["missing_chunks"]) == (3, 0, 0)
        packets = [decode_packet(p, layout) for _, p, _ in _packets(host, sid)]
        assert len(packets) == stats[sid]["rounds"] >= 1
        assert [p.stream_id for p in packets] == [sid] * len(packets)
        assert [p.sequence for p in packets] == list(range(1, len(packets) + 1))


def test_a_replayed_chunk_changes_nothing_and_a_packet_asked_for_again_is_resent(host):
    """Chunk 1 sent twice is taken once. A device whose poll reply was lost asks again from
    the same packet: it gets the same packet, and the host counts one resend."""
    sid = "stream-a"
    first_chunk, second_chunk = _chunks(sid, 2)
    assert ray.get(host.submit_chunk.remote(sid, first_chunk), timeout=300)[0] == "accepted"
    assert ray.get(host.submit_chunk.remote(sid, first_chunk), timeout=300)[0] == "replayed"
    assert ray.get(host.submit_chunk.remote(sid, second_chunk), timeout=300)[0] == "accepted"
    _settled(host, [sid])
    first = ray.get(host.next_packet.remote(sid, 0, None, 5.0), timeout=60)
    again = ray.get(host.next_packet.remote(sid, 0, None, 5.0), timeout=60)
    assert first is not None and again == first
    (stream,) = [s for s in ray.get(host.stats.remote(), timeout=60)["streams"] if s["stream_id"] == sid]
    assert (stream["chunks"], stream["duplicate_chunks"], stream["packets_resent"]) == (2, 0, 1)


def _stats_after_restart(host, attempts: int = 60) -> dict:
    """The kill reaches the old process through Ray's control plane, a method call directly:
    under load the old process can still answer the first calls after `ray.kill`."""
    for _ in range(attempts):
        report = ray.get(host.stats.remote(), timeout=300)
        if report["restarted"]:
            break
        time.sleep(1.0)
    return report


def test_a_restarted_host_resumes_every_stream_it_held_from_its_log(host, tmp_path):
    """After each stream's device applied packet 1, stream-a labels chunk 3 and a bit of
    stream-b's log flips; the host is killed and Ray restarts it. stream-a comes back at packet
    1 with chunk 3 too (its log took the chunk when labelled); stream-b's log is refused by
    name and the stream starts afresh."""
    for sid in SPECS:
        for chunk in _chunks(sid, 2):
            ray.get(host.submit_chunk.remote(sid, chunk), timeout=300)
        _settled(host, [sid])
        assert [p[0] for p in _packets(host, sid)] == [1], "chunk 2 closes the first training period"
        assert ray.get(host.next_packet.remote(sid, 1, 1, 0.1), timeout=60) is None  # acknowledges packet 1
    ray.get(host.submit_chunk.remote("stream-a", _chunks("stream-a", 3)[2]), timeout=300)
    _settled(host, ["stream-a"])
    before = {s["stream_id"]: s["checkpoint"]["written"] for s in ray.get(host.stats.remote(), timeout=60)["streams"]}
    assert before == {"stream-a": 1, "stream-b": 1}
    segment = tmp_path / "store" / "stream-b" / "seg-00000001.log"
    damaged = bytearray(segment.read_bytes())
    damaged[len(damaged) // 2] ^= 0x20
    segment.write_bytes(bytes(damaged))

    ray.kill(host, no_restart=False)
    report = _stats_after_restart(host)
    assert report["restarted"]
    streams = {s["stream_id"]: s for s in report["streams"]}
    assert (streams["stream-a"]["resumed_from_packet"], streams["stream-a"]["chunks"]) == (1, 3)
    assert streams["stream-b"]["resumed_from_packet"] is None and streams["stream-b"]["chunks"] == 0
    assert "seg-00000001.log of stream stream-b is damaged at byte" in streams["stream-b"]["checkpoint"]["refused"]


def test_a_stream_whose_labels_lag_is_told_to_sample_less_sheds_past_its_bound_and_keeps_what_it_took(
        teacher_and_coordinator, tmp_path):
    """A teacher that takes 20 s a batch holds chunk 1; chunks 2-6, sent one after another,
    are each answered at once: while more than one waits the rate halves per chunk waiting,
    down to the floor, and the fifth one waiting (chunk 6) is shed. The host is killed before
    the teacher answers: restarted, it holds chunks 1-5 again (each was in the stream's log
    before its upload was answered), not the shed one, and labels them."""
    _, coordinator = teacher_and_coordinator
    stalled = serve.run(teacher_app("tests.teacher_plugins:stalled_colour", num_cpus=0.5), name="stalled-teacher",
                        route_prefix=None)
    config = AmsConfig.for_profile("cpu").with_overrides(video={"height": 64, "width": 128})
    settings = TrainerSettings(str(tmp_path / "store"), 120.0, label_backlog_chunks=4)
    actor = TrainerHost.options(num_cpus=0.5, max_restarts=1).remote(
        "trainer-lag", [("stream-a", None)], StudentSpec("tiny"), NUM_CLASSES, config.model_dump_json(),
        "ams_gg10", stalled, coordinator, settings)
    try:
        replies = [ray.get(actor.submit_chunk.remote("stream-a", c), timeout=120) for c in _chunks("stream-a", 6)]
        (stream,) = ray.get(actor.stats.remote(), timeout=60)["streams"]
        ray.kill(actor, no_restart=False)
        assert _stats_after_restart(actor)["restarted"]
        after = ray.get(actor.stream_status.remote("stream-a"), timeout=60)
    finally:
        ray.kill(actor)
        serve.delete("stalled-teacher")
    rate, floor = config.sampling.initial_rate_fps, config.sampling.min_rate_fps
    assert [outcome for outcome, _ in replies] == ["accepted"] * 5 + ["shed"]
    assert [r for _, r in replies] == [rate, rate, rate / 2, rate / 4, max(floor, rate / 8), max(floor, rate / 16)]
    assert stream["max_label_backlog"] == 5 and stream["rate_cuts"] == 4 and stream["chunks"] == 0
    assert after["chunk_sequence"] == 5 and after["pending"] + after["chunks"] == 5, after


def test_two_hosts_that_both_open_a_stream_leave_one_line_in_its_log(teacher_and_coordinator, tmp_path):
    """Fencing with real hosts: the stream is leased to host A (epoch 1), which labels, trains
    and logs an acknowledged packet; then it is leased to host B (epoch 2) while A still holds
    it open. A's next write is refused and its caller told the stream moved; B carries on from
    A's log, and the log holds each chunk once and one line of packets."""
    from ams_ray.service.checkpoint_store import CheckpointStore
    from ams_ray.service.stream_lease import LeaseLost, grant
    from ams_ray.service.stream_log import StreamLog
    from ams_ray.wire.stream_records import ACCEPTED, PACKET, LoggedPacket

    teacher, coordinator = teacher_and_coordinator
    config = AmsConfig.for_profile("cpu").with_overrides(video={"height": 64, "width": 128},
                                                         training={"iterations": 3})
    store = CheckpointStore(tmp_path / "store")
    settings = TrainerSettings(store.url, 120.0)
    # Both are given the stream with its label key (the oracle teacher looks labels up by it);
    # the first call carrying an epoch reopens it under that lease.
    a, b = (TrainerHost.options(num_cpus=0.5).remote(
        name, [("stream-a", SPECS["stream-a"].key)], StudentSpec("tiny"), NUM_CLASSES, config.model_dump_json(),
        "ams_gg10", teacher, coordinator, settings) for name in ("trainer-a", "trainer-b"))
    try:
        ray.get([a.ready.remote(), b.ready.remote()], timeout=300)
        chunks = _chunks("stream-a", 6)
        first = grant(store, "stream-a", "trainer-a").epoch
        for data in chunks[:3]:
            assert ray.get(a.submit_chunk.remote("stream-a", data, first), timeout=120)[0] == "accepted"
        for _ in range(300):
            status = ray.get(a.stream_status.remote("stream-a", first), timeout=60)
            if not status["pending"] and status["packet_sequence"] >= 1:
                break
            time.sleep(1.0)
        sequence, version = status["packet_sequence"], status["model_version"]
        assert sequence >= 1
        ray.get(a.next_packet.remote("stream-a", sequence, version, 0.1, first), timeout=60)  # acknowledged: logged

        second = grant(store, "stream-a", "trainer-b").epoch
        assert ray.get(b.stream_status.remote("stream-a", second), timeout=120)["resumed_from_packet"] == sequence
        with pytest.raises(LeaseLost):
            ray.get(a.submit_chunk.remote("stream-a", chunks[3], first), timeout=120)
        with pytest.raises(LeaseLost):  # nor does A reopen it at its old epoch
            ray.get(a.stream_status.remote("stream-a", first), timeout=120)
        for data in chunks[3:]:
            assert ray.get(b.submit_chunk.remote("stream-a", data, second), timeout=120)[0] == "accepted"
        _settled(b, ["stream-a"])
        status = ray.get(b.stream_status.remote("stream-a", second), timeout=60)
        ray.get(b.next_packet.remote("stream-a", status["packet_sequence"], status["model_version"], 0.1, second),
                timeout=60)
    finally:
        ray.kill(a)
        ray.kill(b)
    records = StreamLog(store, "stream-a").read().records
    accepted = [SampleChunk.from_bytes(p).sequence for _, kind, p in records if kind == ACCEPTED]
    packets = [packet_numbers(LoggedPacket.from_bytes(p).packet)[0] for _, kind, p in records if kind == PACKET]
    assert accepted == [1, 2, 3, 4, 5, 6]  # chunk 4, refused by A, was logged once, by B
    assert packets == list(range(1, len(packets) + 1)) and packets[-1] == status["packet_sequence"] > sequence

