"""Sweep the number of clients (and optionally streams per trainer, the scheduler and
streams per GPU) and tabulate what multi_client.py measures at each point.

    python benchmarks/scaling.py --clients 1 4 8 16 32 --duration 60 --speed 0.25 --results-dir runs/scaling
    python benchmarks/scaling.py --clients 8 16 32 64 128 --streams-per-trainer 1 pooled --speed 0.125
    python benchmarks/scaling.py --clients 8 16 --schedulers concurrent fifo --streams-per-gpu 2 4
    python benchmarks/scaling.py --clients 32 64 128 256 --duration 30 --speed 0.125 --teacher oracle
    python benchmarks/scaling.py --from-json runs/scaling/scaling.json --reference runs/compare60/summary.json

`--streams-per-trainer`: 1 is a process per stream, `pooled` the default (one host per GPU
or CPU core), any other N that many streams per host. Each point's training seconds per
round are set against the bare round time of one idle process (`trainer_fusion.py`, K = 1,
measured once before the sweep), so the table shows what sharing the machine costs a round.

`--reference` takes a `compare_seeds.py` summary on the same videos (seeds 0..N-1, same
duration) and adds each point's single-stream gain, so the plot separates what sharing the
server costs from how hard the videos are.

Each point is a separate `multi_client.py` run (a fresh Ray cluster), so points do not
share warm state. Emulated devices are pooled K per edge process (one process per core by
default), so the server's memory and CPU per stream (teacher and trainer hosts) are reported
apart from the emulator's, with the trainers' capacity C and the load against it. Writes
scaling.json, scaling.csv and scaling.png (staleness, gain, and the server's and the
emulator's memory and CPU against clients; one line per scheduler / streams per GPU).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmarks.fleet_point import run_fleet_point  # noqa: E402

COLUMNS = ("clients", "layout", "scheduler", "streams_per_gpu", "completed", "setup_s", "peak_memory_gib",
           "memory_per_stream_mb", "trainer_mb_per_stream", "p95_staleness_video_s", "keeps_up", "mean_miou_gain",
           "single_stream_gain", "train_seconds_per_round", "train_cpu_seconds_per_round", "bare_round_s",
           "round_time_ratio", "teacher_frames_per_s", "mean_teacher_batch", "trainer_busy_fraction", "trainer_hosts",
           "streams_per_trainer", "fused", "lockstep", "trainer_pss_mb", "edge_pss_mb", "uplink_kbps", "downlink_kbps",
           "speed", "wall_s", "teacher", "mean_updates_applied", "streams_without_update", "teacher_eval_frames_per_s",
           "teacher_scoring_shed", "teacher_capacity_frames_per_s", "upload_timeouts", "packets_resent",
           "packets_missed", "shed_chunks", "rate_cuts", "p95_label_wait_s", "capacity_rounds_per_s",
           "demand_rounds_per_s", "load", "p10_miou_gain", "rounds_per_stream", "devices_per_edge_host",
           "edge_mb_per_device", "server_cpu_s_per_stream_minute", "edge_cpu_s_per_stream_minute")
PLOTS = (("p95_staleness_video_s", "p95 staleness (video s)"), ("mean_miou_gain", "mean mIoU gain (points)"),
         ("trainer_mb_per_stream", "server: trainer MiB per stream"),
         ("server_cpu_s_per_stream_minute", "server: CPU-s per stream-minute"),
         ("edge_mb_per_device", "emulator: MiB per device"),
         ("edge_cpu_s_per_stream_minute", "emulator: CPU-s per stream-minute"))


def run_point(clients: int, scheduler: str, streams_per_gpu: int | None, layout: str, args: argparse.Namespace,
              bare_round_s: float | None) -> dict | None:
    name = f"clients{clients}-{scheduler}-{layout}" + (f"-spg{streams_per_gpu}" if streams_per_gpu else "")
    options = ["--clients", str(clients), "--duration", str(args.duration), "--speed", str(args.speed),
               "--scheduler", scheduler]
    if args.teacher:
        options += ["--teacher", args.teacher]
    if streams_per_gpu:
        options += ["--streams-per-gpu", str(streams_per_gpu)]
    if layout != "pooled":
        options += ["--streams-per-trainer", layout]
    if args.lockstep:
        options += ["--lockstep"]
    if args.devices_per_edge_host:
        options += ["--devices-per-edge-host", str(args.devices_per_edge_host)]
    if args.scene_mix:
        options += ["--scene-mix", args.scene_mix]
    summary = run_fleet_point(args.results_dir / name, options)
    if summary is None:
        return None
    row = {**{k: summary.get(k) for k in COLUMNS}, "scheduler": scheduler, "streams_per_gpu": streams_per_gpu,
           "layout": "per-stream" if layout == "1" else layout, "setup_s": summary["setup_s"]["total"],
           "bare_round_s": bare_round_s}
    if bare_round_s and row["train_seconds_per_round"]:
        row["round_time_ratio"] = row["train_seconds_per_round"] / bare_round_s
    return row


def bare_round_seconds(args: argparse.Namespace) -> float | None:
    """One idle process, one stream: the round time `trainer_fusion.py` measures at K = 1."""
    out = args.results_dir / "bare_round"
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("trainer_fusion.py")), "--streams", "1",
                           "--device", "cpu", "--repeats", "5", "--out", str(out)])
    if proc.returncode:
        print(f"bare round time not measured (trainer_fusion.py exit {proc.returncode})", file=sys.stderr)
        return None
    rows = json.loads((out / "trainer_fusion.json").read_text())["rows"]
    return next(r["round_s"] for r in rows if r["mode"] == "sequential")


def plot(rows: list[dict], path: Path) -> None:
    fig, grid = plt.subplots(2, (len(PLOTS) + 1) // 2, figsize=(4 * ((len(PLOTS) + 1) // 2), 7.2))
    axes = grid.flatten()
    series = sorted({(r["scheduler"], r["streams_per_gpu"], r.get("layout")) for r in rows}, key=str)
    for ax, (key, label) in zip(axes, PLOTS):
        for scheduler, spg, layout in series:
            points = [r for r in rows if (r["scheduler"], r["streams_per_gpu"], r.get("layout")) == (scheduler, spg,
                                                                                                       layout)]
            ax.plot([r["clients"] for r in points], [r.get(key) for r in points], marker="o",
                    label=f"{layout}, {scheduler}" + (f", {spg}/GPU" if spg else ""))
        if key == "mean_miou_gain" and any(r.get("single_stream_gain") is not None for r in rows):
            reference = sorted({(r["clients"], r["single_stream_gain"]) for r in rows})
            ax.plot(*zip(*reference), linestyle="--", color="gray", label="single stream (compare)")
            ax.legend(fontsize=8)
        ax.set_xlabel("clients")
        ax.set_title(label)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def single_stream_gains(reference: Path) -> dict[int, float]:
    """seed -> ams_gg10 gain over pretrained, from a compare_seeds.py summary.json."""
    return {e["seed"]: e["gg10_gain_vs_pretrained"] for e in json.loads(reference.read_text())
            if "gg10_gain_vs_pretrained" in e}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--speed", type=float, default=0.25)
    p.add_argument("--schedulers", nargs="+", default=["fifo"])
    p.add_argument("--devices-per-edge-host", type=int, default=None,
                   help="emulated devices per edge process at every point (default: multi_client.py's, one per core)")
    p.add_argument("--scene-mix", default=None, help="every point's --scene-mix (default: all mixed)")
    p.add_argument("--streams-per-gpu", type=int, nargs="+", default=[None],
                   help="needs GPUs in the cluster (a logical one is enough to test packing)")
    p.add_argument("--streams-per-trainer", nargs="+", default=["pooled"],
                   help="1 (a process per stream), pooled (the default layout) or N, one series each")
    p.add_argument("--lockstep", action="store_true", help="every point in lockstep (default: staggered)")
    p.add_argument("--teacher", default=None, help="every point's --teacher (default: multi_client.py's, network)")
    p.add_argument("--results-dir", type=Path, default=Path("runs/scaling"))
    p.add_argument("--reference", type=Path, help="compare_seeds.py summary.json on the same videos")
    p.add_argument("--from-json", type=Path, help="re-tabulate and re-plot an earlier scaling.json, running nothing")
    args = p.parse_args()
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
        points = rows
        args.results_dir = args.from_json.parent
    else:
        points = list(itertools.product(args.schedulers, args.streams_per_gpu, args.streams_per_trainer, args.clients))
        bare = bare_round_seconds(args)
        rows = [r for r in (run_point(n, sched, spg, layout, args, bare) for sched, spg, layout, n in points)
                if r is not None]
    if args.reference:
        gains = single_stream_gains(args.reference)
        for r in rows:
            seeds = range(r["clients"])
            r["single_stream_gain"] = (round(sum(gains[s] for s in seeds) / len(seeds), 2)
                                       if all(s in gains for s in seeds) else None)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "scaling.json").write_text(json.dumps(rows, indent=2))
    with open(args.results_dir / "scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    print(" | ".join(COLUMNS))
    for r in rows:
        print(" | ".join(f"{r.get(c):.3g}" if isinstance(r.get(c), float) else str(r.get(c)) for c in COLUMNS))
    plot(rows, args.results_dir / "scaling.png")
    print(f"wrote {args.results_dir}/scaling.json, scaling.csv, scaling.png")
    return 0 if len(rows) == len(points) else 1


if __name__ == "__main__":
    sys.exit(main())
