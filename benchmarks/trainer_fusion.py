"""Is fusing K streams' training rounds worth it on this device? One command answers it.

    python benchmarks/trainer_fusion.py                          # K = 1 4 16 64 on CUDA if present, else CPU
    python benchmarks/trainer_fusion.py --streams 1 4 16 --device cpu --repeats 2
    python benchmarks/trainer_fusion.py --student lraspp_mobilenet_v3_large:scratch --height 256 --width 512

For each K, builds K students (each with its own seed and its own window of labelled
synthetic frames) and times one training round per stream, sequentially
(`OnlineDistiller.train_round` K times) and fused (`ams_ray.learn.fused_training.train_rounds`,
one vmap step for all K), with the profile's iterations and batch. Prints per-stream round
time and the speed-up, and writes trainer_fusion.json and trainer_fusion.png to --out.
The K = 1 sequential time is the bare round time of one idle process, which
`benchmarks/scaling.py` compares the fleet's rounds against.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ams_ray.config import AmsConfig  # noqa: E402
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo  # noqa: E402
from ams_ray.learn.distill import OnlineDistiller  # noqa: E402
from ams_ray.learn.fused_training import train_rounds  # noqa: E402
from ams_ray.learn.strategies import STRATEGIES  # noqa: E402
from ams_ray.learn.window import FrameWindow  # noqa: E402
from ams_ray.models.students import build_student  # noqa: E402

DISTINCT_WINDOWS = 4  # streams cycle through this many rendered windows (rendering 64 would dominate)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--profile", default=None, help="cpu or paper (default: paper on CUDA, cpu otherwise)")
    p.add_argument("--student", default="tiny")
    p.add_argument("--strategy", default="ams_gg10")
    p.add_argument("--height", type=int, default=None, help="frame height (default: the profile's)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per K and mode (the median is kept)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (a trainer host uses 1)")
    p.add_argument("--out", type=Path, default=Path("runs/trainer_fusion"))
    return p.parse_args(argv)


def make_windows(height: int, width: int, frames: int = 20) -> list[FrameWindow]:
    windows = []
    for seed in range(DISTINCT_WINDOWS):
        video = SyntheticVideo(9000 + seed, duration_s=frames, fps=1, height=height, width=width)
        window = FrameWindow(250)
        window.add(np.arange(frames, dtype=float), np.stack([video.frame(i) for i in range(frames)]),
                   np.stack([video.labels(i) for i in range(frames)]))
        windows.append(window)
    return windows


def make_distillers(count: int, args: argparse.Namespace, config: AmsConfig, device: str) -> list[OnlineDistiller]:
    strategy = STRATEGIES[args.strategy].strategy
    return [OnlineDistiller(build_student(args.student, NUM_CLASSES), config.training, strategy,
                            stream_id=f"stream-{k:03d}", seed=k, device=device) for k in range(count)]


def timed(step, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - began


def measure(count: int, mode: str, args: argparse.Namespace, config: AmsConfig, windows: list[FrameWindow],
            device: str) -> dict:
    """Median seconds of one round for all `count` streams, and the peak device memory."""
    distillers = make_distillers(count, args, config, device)
    stream_windows = [windows[k % len(windows)] for k in range(count)]
    if mode == "sequential":
        def step():
            for d, w in zip(distillers, stream_windows):
                d.train_round(w)
    else:
        def step():
            train_rounds(distillers, stream_windows, [None] * count)
    timed(step, device)  # warm-up: allocator, kernels, first-touch pages
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = statistics.median(timed(step, device) for _ in range(args.repeats))
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return {"streams": count, "mode": mode, "round_s": seconds, "per_stream_round_s": seconds / count,
            "peak_device_mb": peak}


def plot(rows: list[dict], device: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in ("sequential", "fused"):
        points = [r for r in rows if r["mode"] == mode]
        ax.plot([r["streams"] for r in points], [r["per_stream_round_s"] for r in points], marker="o", label=mode)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("streams per trainer (K)")
    ax.set_ylabel("seconds per stream per round")
    ax.set_title(f"Training rounds, sequential vs fused ({device})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    config = AmsConfig.for_profile(args.profile or ("paper" if device == "cuda" else "cpu"))
    height, width = args.height or config.video.height, args.width or config.video.width
    print(f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else f'{args.threads} thread(s)'}), "
          f"student {args.student}, {height}x{width}, batch {config.training.batch_size}, "
          f"{config.training.iterations} iterations, strategy {args.strategy}")
    windows = make_windows(height, width)
    rows = []
    for count in args.streams:
        pair = [measure(count, mode, args, config, windows, device) for mode in ("sequential", "fused")]
        rows += pair
        speedup = pair[0]["round_s"] / pair[1]["round_s"]
        print(f"K={count:3d}  sequential {pair[0]['per_stream_round_s']:.3f} s/stream  fused "
              f"{pair[1]['per_stream_round_s']:.3f} s/stream  fused speed-up x{speedup:.2f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trainer_fusion.json").write_text(json.dumps(
        {"device": device, "student": args.student, "height": height, "width": width,
         "batch_size": config.training.batch_size, "iterations": config.training.iterations,
         "threads": args.threads, "rows": rows}, indent=2))
    plot(rows, device, args.out / "trainer_fusion.png")
    print(f"wrote {args.out}/trainer_fusion.json, trainer_fusion.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
