"""What a stream's durable state costs: the whole-window checkpoint against the log of what
crossed the wire, side by side on the same stream.

    .venv/bin/python benchmarks/state_cost.py --out runs/state_cost                 # 1 simulated hour per case
    .venv/bin/python benchmarks/state_cost.py --out runs/quick --hours 0.1 --teacher oracle

One stream per case (profile x sampling rate), one simulated hour, no Ray: a session labels
each 10-second chunk (the embedded teacher network by default), trains a round every
training period and its device acknowledges each packet at once. Both formats are fed from
the same events:

* old: the format before issue 20 (a whole-window `StreamState`, format 1), captured when a
  packet is made and written when it is acknowledged, reproduced here to measure against;
* new: the stream's log (`ams_ray.service.stream_journal`): each chunk as uploaded, its labels
  once the teacher has them, each packet once acknowledged, snapshots only when a packet chain
  outgrows the weights.

The rate is held fixed (ASR and ATR off) so the window is exactly 250 s at the case's rate.
Packet sizes depend on the strategy's coordinate fraction, not on how long a round trains,
so rounds run `--iterations` (1) Adam steps. Writes go to a directory under `--out`.
Writes DIR/state_cost.json (one row per format and case under `rows`) and DIR/state_cost.png.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
import tracemalloc
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import zstandard  # noqa: E402

from ams_ray.config import AmsConfig  # noqa: E402
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo  # noqa: E402
from ams_ray.data.video import encode_chunk  # noqa: E402
from ams_ray.learn.distill import OnlineDistiller  # noqa: E402
from ams_ray.learn.session import StreamSession  # noqa: E402
from ams_ray.learn.strategies import STRATEGIES  # noqa: E402
from ams_ray.models.students import build_student  # noqa: E402
from ams_ray.service.checkpoint_store import CheckpointStore  # noqa: E402
from ams_ray.service.stream_journal import StreamJournal  # noqa: E402
from ams_ray.teach.teachers import build_teacher  # noqa: E402
from ams_ray.wire.messages import SampleChunk  # noqa: E402

MB = 1 << 20


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/state_cost"))
    p.add_argument("--hours", type=float, default=1.0, help="simulated hours per case")
    p.add_argument("--profiles", nargs="+", default=["cpu", "paper"])
    p.add_argument("--rates", nargs="+", type=float, default=[1.0, 2.0], help="sampling rates, frames/s")
    p.add_argument("--teacher", default="network", choices=["network", "oracle"],
                   help="network: the embedded teacher network; oracle: exact labels (faster, compress better)")
    p.add_argument("--iterations", type=int, default=1, help="Adam steps per round (packet size does not depend on it)")
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------- the old format
def old_checkpoint_capture(session: StreamSession) -> dict:
    """What the old format took when a packet was made: the whole window, copied."""
    times, frames, labels = session.window.arrays()
    d = session.distiller
    return {"mirror": d.mirror_arrays(), "times": times, "frames": frames, "labels": labels,
            "last_label": session._last_label, "progress": session.progress()}


def old_checkpoint_bytes(stream_id: str, captured: dict) -> bytes:
    """Format 1 of `StreamState`: header JSON + zstd-3(npz of mirror, window and last label)."""
    arrays = {f"mirror_{i}": a for i, a in enumerate(captured["mirror"])}
    arrays.update(window_times_s=captured["times"], window_frames=captured["frames"],
                  window_labels=captured["labels"])
    if captured["last_label"] is not None:
        arrays["last_label"] = captured["last_label"]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    body = zstandard.ZstdCompressor(level=3).compress(buffer.getvalue())
    head = json.dumps({"stream": stream_id, "progress": captured["progress"].__dict__,
                       "tensors": len(captured["mirror"])}).encode()
    return b"AMSS\x01" + len(head).to_bytes(4, "little") + zlib.crc32(head + body).to_bytes(4, "little") + head + body


def old_restore(data: bytes, session: StreamSession) -> None:
    head_len = int.from_bytes(data[5:9], "little")
    header = json.loads(data[13:13 + head_len])
    arrays = np.load(io.BytesIO(zstandard.ZstdDecompressor().decompress(data[13 + head_len:])), allow_pickle=False)
    progress = header["progress"]
    session.distiller.restore([arrays[f"mirror_{i}"] for i in range(header["tensors"])], progress["version"],
                              progress["packet_sequence"])
    session.window.add(arrays["window_times_s"], arrays["window_frames"], arrays["window_labels"])


# ---------------------------------------------------------------------------- one case
@dataclass
class Tally:
    """One format's costs over the run."""
    store_bytes: int = 0
    capture_ms: list[float] = field(default_factory=list)  # on the host's loop, when a packet is made
    ack_write_ms: list[float] = field(default_factory=list)  # on the writer thread, per acknowledgement
    chunk_write_ms: list[float] = field(default_factory=list)  # the chunk as uploaded, before it is answered
    label_write_ms: list[float] = field(default_factory=list)


def make_session(config: AmsConfig) -> StreamSession:
    spec = STRATEGIES["ams_gg10"]
    distiller = OnlineDistiller(build_student("tiny", NUM_CLASSES), config.training, spec.strategy,
                                stream_id="cam", seed=config.seed)
    return StreamSession(distiller, None, NUM_CLASSES, config, asr=False, atr=False)


def case_config(profile: str, rate: float, iterations: int, seed: int) -> AmsConfig:
    return AmsConfig.for_profile(profile).with_overrides(
        training={"iterations": iterations}, sampling={"initial_rate_fps": rate}, seed=seed)


def run_case(profile: str, rate: float, args: argparse.Namespace, teacher, workdir: Path) -> list[dict]:
    """Both formats' rows for one case; `teacher` None labels with the video's exact labels."""
    config = case_config(profile, rate, args.iterations, args.seed)
    h, w = config.video.height, config.video.width
    video = SyntheticVideo(args.seed, duration_s=args.hours * 3600, fps=rate, height=h, width=w)
    session = make_session(config)
    store_dir = workdir / f"{profile}-{rate:g}"
    shutil.rmtree(store_dir, ignore_errors=True)
    old_store, new_store = CheckpointStore(store_dir / "old"), CheckpointStore(store_dir / "new")
    mirror_bytes = session.distiller.mirror_nbytes
    journal = StreamJournal(new_store, "cam", session.distiller.layout.fingerprint, config.training.horizon_s,
                            mirror_bytes)
    old, new = Tally(), Tally()
    wire = {"up": 0, "down": 0}
    per_chunk = int(round(config.training.send_period_s * rate))
    chunks = int(video.num_frames // per_chunk)
    last_old: bytes = b""
    began = time.perf_counter()
    for seq in range(1, chunks + 1):
        indices = list(range((seq - 1) * per_chunk, seq * per_chunk))
        frames = np.stack([video.frame(i) for i in indices])
        chunk = SampleChunk("cam", seq, tuple(indices), tuple(i / rate for i in indices), encode_chunk(frames))
        wire["up"] += chunk.num_bytes
        new.chunk_write_ms.append(_timed_ms(journal.write_accepted, chunk))
        decoded = session.accept(chunk)
        labels = (np.asarray(teacher.label(decoded, indices), dtype=np.uint8) if teacher is not None
                  else np.stack([video.labels(i) for i in indices]))  # oracle: the video's exact labels
        session.record(chunk, decoded, labels)
        new.label_write_ms.append(_timed_ms(journal.write_labels, chunk.sequence, labels))
        now = chunk.times_s[-1]
        if not session.due(now):
            continue
        packet = session.train(now).packet
        if packet is None:
            continue
        wire["down"] += len(packet)
        t0 = time.perf_counter()
        captured = old_checkpoint_capture(session)
        old.capture_ms.append((time.perf_counter() - t0) * 1e3)
        new.capture_ms.append(_timed_ms(journal.packet_made, packet, session.progress(),
                                        session.distiller.mirror_arrays))
        t0 = time.perf_counter()
        last_old = old_checkpoint_bytes("cam", captured)
        old_store.put("cam", "state.ams", last_old)
        old.ack_write_ms.append((time.perf_counter() - t0) * 1e3)
        old.store_bytes += len(last_old)
        due = journal.acknowledged(session.distiller.sequence, session.distiller.version)
        new.ack_write_ms.append(_timed_ms(journal.write_packets, due))
        if seq % 30 == 0:
            print(f"  {profile} {rate:g} fps: {seq}/{chunks} chunks, {time.perf_counter() - began:.0f} s", flush=True)
    new.store_bytes = journal.log.bytes_written
    hours = chunks * config.training.send_period_s / 3600
    wire_per_hour = (wire["up"] + wire["down"]) / hours
    window = _window_bytes(session)
    model = 3 * mirror_bytes  # the student's parameters, the pretrained copy and the mirror
    beyond = {"old": _captured_bytes(captured) if session.stats.rounds else 0, "new": _journal_held_bytes(journal)}
    restores = {"old": _restore(lambda s: old_restore(last_old, s), config),
                "new": _restore(lambda s: StreamJournal(new_store, "cam", s.distiller.layout.fingerprint,
                                                        config.training.horizon_s, mirror_bytes).restore_into(s),
                                config)}
    rows = []
    for name, tally in (("old", old), ("new", new)):
        rows.append({
            "format": name, "profile": profile, "rate_fps": rate, "hours_simulated": round(hours, 3),
            "store_bytes_per_hour": round(tally.store_bytes / hours),
            "wire_bytes_per_hour": round(wire_per_hour),
            "ratio": round(tally.store_bytes / hours / wire_per_hour, 3),
            "ack_write_ms_p50": _pct(tally.ack_write_ms, 50), "ack_write_ms_p95": _pct(tally.ack_write_ms, 95),
            "chunk_write_ms_p50": _pct(tally.chunk_write_ms, 50), "chunk_write_ms_p95": _pct(tally.chunk_write_ms, 95),
            "label_write_ms_p50": _pct(tally.label_write_ms, 50), "label_write_ms_p95": _pct(tally.label_write_ms, 95),
            "capture_ms_p50": _pct(tally.capture_ms, 50), "capture_ms_p95": _pct(tally.capture_ms, 95),
            "restore_s": round(restores[name][0], 3), "restore_peak_mb": round(restores[name][1] / MB, 1),
            "restored_window_frames": restores[name][2], "window_frames": len(session.window),
            "memory_per_stream_mb": round((window + model + beyond[name]) / MB, 2),
            "beyond_window_and_model_kb": round(beyond[name] / 1024, 1),
            "store_footprint_bytes": (len(last_old) if name == "old" else journal.log.footprint_bytes()),
            "packets": session.stats.rounds, "chunks": chunks,
        })
    return rows


def _timed_ms(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1e3


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(values, q)), 3)


def _window_bytes(session: StreamSession) -> int:
    times, frames, labels = session.window.arrays()
    return times.nbytes + frames.nbytes + labels.nbytes


def _captured_bytes(captured: dict) -> int:
    """The old format's copy held from a packet being made to its acknowledgement."""
    return sum(a.nbytes for a in captured["mirror"]) + captured["frames"].nbytes + captured["labels"].nbytes


def _journal_held_bytes(journal: StreamJournal) -> int:
    """What the journal holds in memory: packets awaiting acknowledgement (with their
    progress and any weights captured for a snapshot) and the retention's bookkeeping."""
    made = sum(len(m.packet) + len(m.progress.to_json()) + sum(a.nbytes for a in m.mirror or [])
               for m in journal.made.values())
    return made + 64 * (len(journal.retention.chunks) + len(journal.retention.packets))


def _restore(restore, config: AmsConfig) -> tuple[float, int, int]:
    """(seconds, peak bytes allocated, frames in the window) to restore a fresh session."""
    session = make_session(config)
    tracemalloc.start()
    t0 = time.perf_counter()
    restore(session)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak, len(session.window)


# ---------------------------------------------------------------------------- report
def print_table(rows: list[dict]) -> None:
    print(f"\n{'profile':<7} {'fps':>4} {'format':<6} {'store MB/h':>10} {'wire MB/h':>9} {'ratio':>7} "
          f"{'ack ms p50/p95':>15} {'capture ms':>10} {'restore s':>9} {'peak MB':>8} {'MB/stream':>9} {'+KB':>8}")
    for r in rows:
        print(f"{r['profile']:<7} {r['rate_fps']:>4g} {r['format']:<6} {r['store_bytes_per_hour'] / MB:10.2f} "
              f"{r['wire_bytes_per_hour'] / MB:9.2f} {r['ratio']:7.2f} "
              f"{r['ack_write_ms_p50']:>7.2f}/{r['ack_write_ms_p95']:<7.2f} {r['capture_ms_p50']:10.2f} {r['restore_s']:9.2f} "
              f"{r['restore_peak_mb']:8.1f} {r['memory_per_stream_mb']:9.1f} {r['beyond_window_and_model_kb']:8.1f}")


def plot(rows: list[dict], path: Path) -> None:
    cases = sorted({(r["profile"], r["rate_fps"]) for r in rows})
    labels = [f"{p} {f:g} fps" for p, f in cases]
    x = np.arange(len(cases))
    fig, ax = plt.subplots(figsize=(8, 4))
    for offset, (name, colour) in zip((-0.27, 0.0, 0.27), (("old", "#c44"), ("new", "#2a7"), ("wire", "#888"))):
        values = []
        for case in cases:
            row = next(r for r in rows if (r["profile"], r["rate_fps"]) == case
                       and r["format"] == ("new" if name == "wire" else name))
            values.append((row["wire_bytes_per_hour"] if name == "wire" else row["store_bytes_per_hour"]) / MB)
        ax.bar(x + offset, values, 0.27, label={"old": "old: whole window per packet", "new": "new: the log",
                                                 "wire": "wire (up + down)"}[name], color=colour)
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 20)  # room for the legend above the bars
    ax.set_xticks(x, labels)
    ax.set_ylabel("MB per stream-hour")
    ax.set_title("Durable state written per stream-hour")
    ax.legend(loc="upper left", ncol=3, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    network = build_teacher("network") if args.teacher == "network" else None
    rows = []
    workdir = args.out / "stores"
    for profile in args.profiles:
        for rate in args.rates:
            print(f"{profile} profile, {rate:g} frames/s, {args.hours:g} simulated hour(s)", flush=True)
            rows += run_case(profile, rate, args, network, workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    result = {"teacher": args.teacher, "iterations": args.iterations, "seed": args.seed, "rows": rows}
    (args.out / "state_cost.json").write_text(json.dumps(result, indent=2))
    plot(rows, args.out / "state_cost.png")
    print_table(rows)
    print(f"\nwrote {args.out / 'state_cost.json'} and {args.out / 'state_cost.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
