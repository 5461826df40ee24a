"""A stream's log, end to end without Ray: a session and its journal on a store, a device
(ONNX) applying the packets, and a second session restored from the store alone."""

import uuid

import numpy as np
import pytest

from ams_ray.config import AmsConfig
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.data.video import encode_chunk
from ams_ray.device.runtime import DeviceModel
from ams_ray.learn.distill import OnlineDistiller, Strategy
from ams_ray.learn.session import StreamSession
from ams_ray.models.students import build_student
from ams_ray.service.checkpoint_store import CheckpointStore
from ams_ray.service.stream_journal import COMPACT_AFTER_SEGMENTS, StreamJournal
from ams_ray.service.stream_log import segment_name
from ams_ray.wire.messages import SampleChunk

HORIZON_S = 30.0


@pytest.fixture(scope="module")
def video():
    return SyntheticVideo(45, duration_s=700, fps=2, height=64, width=128)


@pytest.fixture(params=["directory", "memory"])
def store(request, tmp_path):
    url = str(tmp_path / "store") if request.param == "directory" else f"memory://ams-{uuid.uuid4().hex}/run"
    return CheckpointStore(url)


class Stream:
    """One stream's server side as a host runs it: accept, label, record and log each chunk;
    train when due; log a packet when the device acknowledges it."""

    def __init__(self, store, video, restart_from_pretrained: bool, snapshot_after_bytes: int = 1 << 30) -> None:
        config = AmsConfig.for_profile("cpu").with_overrides(training={
            "iterations": 2, "batch_size": 2, "horizon_s": HORIZON_S,
            "restart_from_pretrained": restart_from_pretrained})
        distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), config.training, Strategy(), stream_id="cam",
                                    seed=3)
        self.video = video
        self.session = StreamSession(distiller, None, NUM_CLASSES, config, asr=True, atr=True)
        self.journal = StreamJournal(store, "cam", distiller.layout.fingerprint, HORIZON_S, snapshot_after_bytes)

    def chunk(self, seq: int, device: DeviceModel) -> SampleChunk:
        indices = [20 * seq, 20 * seq + 10]  # 2 frames/s video: one chunk per 10 s, frames 5 s apart
        frames = np.stack([self.video.frame(i) for i in indices])
        return SampleChunk("cam", seq, tuple(indices), tuple(i / self.video.fps for i in indices),
                           encode_chunk(frames), device.version, max(device.last_sequence, 0))

    def take(self, chunk: SampleChunk) -> bytes | None:
        self.journal.write_accepted(chunk)
        frames = self.session.accept(chunk)
        labels = np.stack([self.video.labels(i) for i in chunk.frame_indices])
        self.session.record(chunk, frames, labels)
        self.journal.write_labels(chunk.sequence, labels)
        now = chunk.times_s[-1]
        if not self.session.due(now):
            return None
        packet = self.session.train(now).packet
        if packet is not None:
            self.journal.packet_made(packet, self.session.progress(), self.session.distiller.mirror_arrays)
        return packet

    def acknowledge(self, device: DeviceModel) -> None:
        self.journal.write_packets(self.journal.acknowledged(device.last_sequence, device.version))


def _run(stream: Stream, device: DeviceModel, chunks: range, acknowledge: bool = True) -> None:
    for seq in chunks:
        packet = stream.take(stream.chunk(seq, device))
        if packet is not None:
            device.apply(packet)
            if acknowledge:
                stream.acknowledge(device)


@pytest.mark.parametrize("restart_from_pretrained", [True, False])
def test_a_restored_stream_trains_the_same_next_packet_as_one_that_never_stopped(store, video,
                                                                                 restart_from_pretrained):
    live = Stream(store, video, restart_from_pretrained, snapshot_after_bytes=15_000)
    device = DeviceModel(live.session.distiller.edge_bundle(64, 128))
    _run(live, device, range(1, 13))
    _run(live, device, range(13, 15), acknowledge=False)  # labelled after the last acknowledgement: logged too
    assert live.session.stats.rounds >= 6
    assert (live.journal.stats["snapshots"] > 0) == (not restart_from_pretrained)

    restored = Stream(store, video, restart_from_pretrained, snapshot_after_bytes=15_000)
    assert restored.journal.restore_into(restored.session) == device.last_sequence
    assert restored.session.progress() == live.session.progress()
    assert [len(s.session.window) for s in (live, restored)] == [len(live.session.window)] * 2
    for held, mirror in zip(device._trainable, restored.session.distiller.mirror_arrays()):
        np.testing.assert_array_equal(held, mirror)

    following = [s.take(s.chunk(15, device)) or s.session.train(150.0).packet for s in (live, restored)]
    assert following[0] == following[1] and following[0] is not None
    device.apply(following[1])  # the device takes the restored stream's packet: same numbering, same base


def test_a_torn_last_chunk_restores_the_stream_as_it_was_before_that_chunk(store, video):
    live = Stream(store, video, restart_from_pretrained=True)
    device = DeviceModel(live.session.distiller.edge_bundle(64, 128))
    _run(live, device, range(1, 5))
    before = live.session.progress()
    _run(live, device, range(5, 6), acknowledge=False)
    last = segment_name(live.journal.log.next_segment - 1)  # chunk 5's labels
    store.put("cam", last, store.get("cam", last)[:-100])

    restored = Stream(store, video, restart_from_pretrained=True)
    restored.journal.restore_into(restored.session)
    assert restored.session.last_chunk == 4 and restored.session.progress() == before
    assert [c.sequence for c in restored.journal.waiting] == [5], "accepted, its labels torn: to be labelled again"


def test_a_chunk_accepted_and_never_labelled_comes_back_to_be_labelled_and_a_dropped_one_does_not(store, video):
    live = Stream(store, video, restart_from_pretrained=True)
    device = DeviceModel(live.session.distiller.edge_bundle(64, 128))
    _run(live, device, range(1, 3))
    waiting, dropped = live.chunk(3, device), live.chunk(4, device)
    live.journal.write_accepted(waiting)
    live.journal.write_accepted(dropped)
    live.journal.write_labels(4, None)  # e.g. the teacher gave up on it

    restored = Stream(store, video, restart_from_pretrained=True)
    restored.journal.restore_into(restored.session)
    assert restored.journal.waiting == [waiting] and restored.session.last_chunk == 2


def test_compaction_keeps_exactly_the_window_and_the_store_stays_bounded_over_many_windows(store, video):
    stream = Stream(store, video, restart_from_pretrained=True)
    device = DeviceModel(stream.session.distiller.edge_bundle(64, 128))
    footprints, chunk_bytes = [], []
    for seq in range(1, 61):  # 600 s of video: twenty windows of 30 s
        chunk = stream.chunk(seq, device)
        stream.journal.write_accepted(chunk)
        labels = np.stack([video.labels(i) for i in chunk.frame_indices])
        stream.session.record(chunk, stream.session.accept(chunk), labels)
        stream.journal.write_labels(chunk.sequence, labels)
        listing = store.listing("cam")
        chunk_bytes.append(sum(listing[segment_name(stream.journal.log.next_segment - n)] for n in (1, 2)))
        footprints.append(stream.journal.log.footprint_bytes())

    newest = 600.0 + 5.0
    window = [seq for seq in range(1, 61) if 20 * seq / 2 + 5.0 >= newest - HORIZON_S]
    assert [c.sequence for c in stream.journal.retention.live_chunks()] == window
    bound = (len(window) + COMPACT_AFTER_SEGMENTS) * max(chunk_bytes) + 200  # + the manifest (chunk: 2 segments)
    assert max(footprints) <= bound and max(footprints[-10:]) <= bound
    assert sum(chunk_bytes) > 2 * bound, "without compaction the store would have outgrown the bound"

    restored = Stream(store, video, restart_from_pretrained=True)
    restored.journal.restore_into(restored.session)
    times, _, _ = restored.session.window.arrays()
    frames_in_window = [t for seq in window for t in (10.0 * seq, 10.0 * seq + 5.0) if t >= newest - HORIZON_S]
    assert list(times) == frames_in_window == list(stream.session.window.arrays()[0])


@pytest.mark.parametrize("restart_from_pretrained", [True, False])
def test_a_device_ahead_of_the_restored_log_is_resynchronised_and_both_agree_again(store, video,
                                                                                  restart_from_pretrained):
    """The device applied a packet whose acknowledgement never reached the log (the host died
    first): the restored stream learns from the next chunk that the device is ahead, and its
    next packet patches the pretrained model, which the device applies whatever it holds."""
    live = Stream(store, video, restart_from_pretrained)
    device = DeviceModel(live.session.distiller.edge_bundle(64, 128))
    _run(live, device, range(1, 4))
    _run(live, device, range(4, 6), acknowledge=False)
    assert device.last_sequence > live.journal.durable_sequence

    restored = Stream(store, video, restart_from_pretrained)
    restored.journal.restore_into(restored.session)
    packet = restored.take(restored.chunk(6, device)) or restored.session.train(65.0).packet
    assert restored.session.stats.resyncs == 1
    device.apply(packet)  # raises PacketError if device and server disagreed on sequence or version
    for held, mirror in zip(device._trainable, restored.session.distiller.mirror_arrays()):
        np.testing.assert_allclose(held, mirror, rtol=0, atol=1e-6)
