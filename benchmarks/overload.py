"""The same mixed fleet at 1x, 2x and 4x what the trainers sustain, each scheduler side by side.

    python benchmarks/overload.py --streams 12 --loads 1 2 4 --policies fifo,gain --out runs/overload
    python benchmarks/overload.py --streams 12 --capacity 0.8 --loads 2 --policies fifo,round_robin,gain

First measures C, the rounds per second the trainer hosts sustain with the teacher and the
devices running (a short `multi_client.py` run; `--capacity` skips it), then runs the fleet
(`--scene-mix`, the same seeds every time) at each load L by playing its videos at the
speed that makes L x C rounds due per second, once per policy. Each point is a fresh
`multi_client.py` run. The teacher is the oracle by default, so the trainers, not the
teacher, are what runs short.

Writes DIR/overload.json (`capacity_rounds_per_s`, `unloaded_gain` per policy, one row per
(policy, load) under `rows`), overload.csv and overload.png (mean and p10 gain, staleness
and rounds per stream against load), and prints the table with the goals checked.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmarks.fleet_point import run_fleet_point  # noqa: E402

PERIOD_S = 10.0  # the cpu profile's training period (video seconds between a stream's rounds)
COLUMNS = ("policy", "load", "speed", "mean_gain", "p10_gain", "p95_staleness_video_s", "rounds_per_stream",
           "measured_load", "capacity_rounds_per_s", "rounds_deferred", "reverts", "longest_round_wait_video_s",
           "completed")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=12)
    p.add_argument("--loads", type=float, nargs="+", default=[1.0, 2.0, 4.0],
                   help="rounds asked per second, as multiples of C")
    p.add_argument("--policies", default="fifo,gain", help="comma-separated schedulers (fifo, round_robin, gain)")
    p.add_argument("--duration", type=float, default=120.0, help="video seconds per stream")
    p.add_argument("--scene-mix", default="static:0.25,slow:0.5,fast:0.25")
    p.add_argument("--teacher", default="oracle")
    p.add_argument("--capacity", type=float, default=None, help="C in rounds/s (default: measured first)")
    p.add_argument("--fairness-floor", type=float, default=None, help="gain's floor in periods (default: its own)")
    p.add_argument("--hibernate-below", dest="hibernate_gain", type=float, default=None,
                   help="gain's hibernation threshold in mIoU points (default: its own)")
    p.add_argument("--seed-base", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/overload"))
    args = p.parse_args(argv)
    args.policies = [name.strip() for name in args.policies.split(",") if name.strip()]
    return args


def fleet_run(args: argparse.Namespace, name: str, scheduler: str, speed: float, duration: float) -> dict | None:
    """One fleet point (`run_fleet_point`); its summary, or None (said) when it wrote none."""
    options = ["--clients", str(args.streams), "--duration", f"{duration:g}", "--speed", f"{speed:.4g}",
               "--scheduler", scheduler, "--scene-mix", args.scene_mix, "--teacher", args.teacher,
               "--seed-base", str(args.seed_base)]
    if args.fairness_floor is not None:
        options += ["--fairness-floor", str(args.fairness_floor)]
    if args.hibernate_gain is not None:
        options += ["--hibernate-below", str(args.hibernate_gain)]
    print(f"== {name}: {scheduler} at {speed:.3g}x", flush=True)
    return run_fleet_point(args.out / name, options, quiet=True)


def measure_capacity(args: argparse.Namespace) -> float:
    """C with the whole fleet running: a short run at 1x video speed, its hosts' rounds over
    their training seconds (`scheduling_figures`)."""
    summary = fleet_run(args, "capacity", "fifo", 1.0, 40.0)
    capacity = (summary or {}).get("capacity_rounds_per_s")
    if not capacity:
        raise SystemExit("could not measure the trainers' capacity (see above); pass --capacity ROUNDS_PER_S")
    return float(capacity)


def speed_for(load: float, capacity: float, streams: int) -> float:
    """Video speed at which `streams` make `load` x C rounds due per second."""
    return load * capacity * PERIOD_S / streams


def row(policy: str, load: float, speed: float, summary: dict) -> dict:
    return {"policy": policy, "load": load, "speed": speed, "mean_gain": summary.get("mean_miou_gain"),
            "p10_gain": summary.get("p10_miou_gain"), "p95_staleness_video_s": summary.get("p95_staleness_video_s"),
            "rounds_per_stream": summary.get("rounds_per_stream"), "measured_load": summary.get("load"),
            "capacity_rounds_per_s": summary.get("capacity_rounds_per_s"),
            "rounds_deferred": sum((summary.get("rounds_deferred") or {}).values()),
            "reverts": summary.get("reverts", 0),
            "longest_round_wait_video_s": summary.get("longest_round_wait_video_s"),
            "completed": summary.get("completed"), "by_scene": summary.get("by_scene", {})}


def unloaded_gains(rows: list[dict]) -> dict[str, float]:
    """Each policy's mean gain at the lowest load run (1x when it was run)."""
    lowest = min((r["load"] for r in rows), default=None)
    return {r["policy"]: r["mean_gain"] for r in rows if r["load"] == lowest}


def goal_lines(rows: list[dict], unloaded: dict[str, float]) -> list[str]:
    """The issue's goals, checked against what was measured (only those whose runs exist)."""
    at = {(r["policy"], r["load"]): r for r in rows if r["mean_gain"] is not None}
    lines = []
    gain1, fifo1 = at.get(("gain", 1.0)), at.get(("fifo", 1.0))
    if gain1 and fifo1:
        close = gain1["mean_gain"] >= fifo1["mean_gain"] - 0.5
        lines.append(f"1x: gain {gain1['mean_gain']:+.2f} vs fifo {fifo1['mean_gain']:+.2f} "
                     f"(goal: at most 0.5 below fifo): {'met' if close else 'NOT met'}")
    base = unloaded.get("gain")
    for load, share in ((2.0, 0.8), (4.0, 0.6)):
        r = at.get(("gain", load))
        if r and base:
            kept = r["mean_gain"] / base
            lines.append(f"{load:g}x: gain keeps {kept:.0%} of its unloaded gain (goal: {share:.0%}): "
                         f"{'met' if kept >= share else 'NOT met'}")
    r2, f2 = at.get(("gain", 2.0)), at.get(("fifo", 2.0))
    if r2 and f2:
        lead = r2["mean_gain"] - f2["mean_gain"]
        lines.append(f"2x: gain beats fifo by {lead:+.2f} mIoU (goal: 3): {'met' if lead >= 3 else 'NOT met'}")
    worst = [r["p10_gain"] for r in rows if r["policy"] == "gain" and r["p10_gain"] is not None]
    if worst:
        lines.append(f"gain's p10 gain, worst load: {min(worst):+.2f} (goal: >= 0): "
                     f"{'met' if min(worst) >= 0 else 'NOT met'}")
    return lines


def write(out: Path, capacity: float, rows: list[dict]) -> dict:
    unloaded = unloaded_gains(rows)
    result = {"capacity_rounds_per_s": capacity, "unloaded_gain": unloaded, "rows": rows,
              "goals": goal_lines(rows, unloaded)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "overload.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    with open(out / "overload.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot(out / "overload.png", rows)
    return result


def plot(path: Path, rows: list[dict]) -> None:
    panels = (("mean_gain", "mean mIoU gain"), ("p10_gain", "p10 mIoU gain (worst streams)"),
              ("p95_staleness_video_s", "p95 staleness (video s)"), ("rounds_per_stream", "rounds per stream"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (key, title) in zip(axes, panels):
        for policy in dict.fromkeys(r["policy"] for r in rows):
            points = sorted((r["load"], r[key]) for r in rows if r["policy"] == policy and r[key] is not None)
            if points:
                ax.plot(*zip(*points), marker="o", label=policy)
        ax.set_xlabel("load (x capacity C)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(result: dict) -> None:
    print(f"capacity C = {result['capacity_rounds_per_s']:.3f} rounds/s")
    print(f"{'policy':<12}{'load':>5}{'speed':>7}{'gain':>8}{'p10':>8}{'p95 stale':>10}{'rounds':>8}"
          f"{'deferred':>9}{'wait max':>9}  by scene (gain / rounds)")
    for r in result["rows"]:
        scenes = "  ".join(f"{k} {v['mean_miou_gain']:+.1f}/{v['rounds_per_stream']:.1f}"
                           for k, v in r["by_scene"].items() if v["mean_miou_gain"] is not None)
        print(f"{r['policy']:<12}{r['load']:>5g}{r['speed']:>7.3g}{_f(r['mean_gain']):>8}{_f(r['p10_gain']):>8}"
              f"{_f(r['p95_staleness_video_s']):>10}{_f(r['rounds_per_stream']):>8}{r['rounds_deferred']:>9}"
              f"{_f(r['longest_round_wait_video_s']):>9}  {scenes}")
    for line in result["goals"]:
        print(line)


def _f(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    capacity = args.capacity or measure_capacity(args)
    rows = []
    for load in args.loads:
        speed = speed_for(load, capacity, args.streams)
        for policy in args.policies:
            summary = fleet_run(args, f"{policy}-load{load:g}", policy, speed, args.duration)
            if summary is not None:
                rows.append(row(policy, load, speed, summary))
        write(args.out, capacity, rows)  # after every load: an interrupted study keeps what it measured
    result = write(args.out, capacity, rows)
    print_table(result)
    print(f"wrote {args.out}/overload.json, overload.csv, overload.png")
    return 0 if len(rows) == len(args.loads) * len(args.policies) else 1


if __name__ == "__main__":
    sys.exit(main())
