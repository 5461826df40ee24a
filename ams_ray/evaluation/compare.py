"""Run every strategy on one video and report: the table, results.json, and the mIoU plot.

Strategies run in worker processes (one torch thread each), two at a time on a 2-core
machine; a shared progress bar counts frames across all of them.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import queue
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ams_ray.config import AmsConfig  # noqa: E402
from ams_ray.data.datasets import VideoSource  # noqa: E402
from ams_ray.data.video import VideoReader  # noqa: E402
from ams_ray.evaluation.scoring_labels import label_scored_frames  # noqa: E402
from ams_ray.evaluation.simulate import StreamResult, run_in_worker  # noqa: E402
from ams_ray.learn.strategies import STRATEGIES  # noqa: E402
from ams_ray.teach.teacher_spec import read_spec  # noqa: E402
from ams_ray.teach.teachers import looks_up_labels  # noqa: E402


class _QueueProgress:
    """Picklable progress callback: workers post frame counts to the parent's bar."""

    def __init__(self, q) -> None:
        self.q = q

    def __call__(self, frames: int) -> None:
        self.q.put(frames)


def run_comparison(
    source: VideoSource,
    teacher_spec: str,
    student_spec: str,
    config: AmsConfig,
    strategies: Sequence[str],
    max_duration_s: float | None,
    workers: int = 2,
    truth_spec: str | None = None,
) -> list[StreamResult]:
    """Each strategy learns from `teacher_spec` and is scored against `truth_spec`."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    reader = VideoReader(source.path, config.video.height, config.video.width)
    frames = reader.num_frames_hint or int(reader.fps * (max_duration_s or 0)) or None
    if frames and max_duration_s:
        frames = min(frames, int(max_duration_s * reader.fps))
    # The files the specs name are read once here and travel to the workers as bytes. A model
    # teacher labels the scored frames once here, not once per strategy; cached labels (oracle,
    # labels:DIR) are only read, so each worker reads its own.
    teacher, truth = read_spec(teacher_spec), read_spec(truth_spec) if truth_spec else None
    scoring = None if looks_up_labels(teacher_spec) else label_scored_frames(source, teacher, config, max_duration_s)
    context = mp.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
        progress_queue = manager.Queue()
        futures = [
            pool.submit(run_in_worker, source, teacher, student_spec, config, STRATEGIES[name],
                        max_duration_s, _QueueProgress(progress_queue), truth, scoring)
            for name in strategies
        ]
        with tqdm(total=(frames or 0) * len(strategies) or None, unit="frame",
                  desc=f"{len(strategies)} strategies on {source.name}") as bar:
            while not all(f.done() for f in futures):
                try:
                    bar.update(progress_queue.get(timeout=0.5))
                except queue.Empty:
                    pass
            while not progress_queue.empty():
                bar.update(progress_queue.get())
        return [f.result() for f in futures]


def results_document(source: VideoSource, results: list[StreamResult], config: AmsConfig, teacher_spec: str,
                     truth_spec: str) -> dict:
    """Rows score against the truth (`miou`) and the teacher (`miou_vs_teacher`); `teacher_miou`
    is the teacher against the truth (None when the truth is the teacher itself)."""
    return {
        "video": source.name,
        "profile": config.profile.value,
        "packet_format": config.packet_format,
        "teacher": teacher_spec,
        "truth": truth_spec,
        "teacher_miou": round(results[0].teacher_miou, 3) if results and truth_spec != teacher_spec else None,
        "rows": [r.row() for r in results],
    }


def format_table(results: list[StreamResult]) -> str:
    header = (f"{'strategy':<18} {'mIoU':>6} {'vs teacher':>10} {'up Kbps':>8} {'down Kbps':>9} {'sent':>5} "
              f"{'applied':>7} {'B/update':>9}")
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(f"{r.strategy:<18} {r.miou:6.2f} {r.miou_vs_teacher:10.2f} {r.uplink_kbps:8.1f} "
                     f"{r.downlink_kbps:9.1f} {r.updates_sent:5d} {r.updates_applied:7d} {r.mean_packet_bytes:9.0f}")
    unapplied = [r.strategy for r in results if r.updates_applied < r.updates_sent]
    if unapplied:
        lines.append(f"sent > applied: {', '.join(unapplied)} made updates that reached the device only after "
                     "the video ended (training time plus transfer at --link-kbps)")
    return "\n".join(lines)


# Baselines drawn on top in complementary dashes: where two of them coincide (one_time equals
# pretrained until its update lands), both stay visible instead of one hiding the other.
# Adaptive strategies that coincide (ATR that never hibernates) stay visible by line width.
BASELINE_STYLES = {
    "pretrained": {"color": "black", "linestyle": (0, (4, 4))},
    "one_time": {"color": "tab:gray", "linestyle": (4, (4, 4))},
}


def miou_figure(results: list[StreamResult], title: str, window_s: float = 10.0) -> plt.Figure:
    """mIoU over time per strategy; the legend sits outside the axes so it hides no curve."""
    from ams_ray.accuracy import MiouTrace

    fig, ax = plt.subplots(figsize=(12, 4.5))
    adaptive_left = sum(r.strategy not in BASELINE_STYLES for r in results)
    for r in results:
        t, v = MiouTrace(r.times_s, r.miou_trace).windowed(window_s)
        style = BASELINE_STYLES.get(r.strategy)
        if style:
            ax.plot(t, v, label=f"{r.strategy} ({r.miou:.1f})", linewidth=1.6, zorder=3, **style)
        else:  # each drawn thinner than the one before, so an equal curve drawn later leaves its edges showing
            adaptive_left -= 1
            ax.plot(t, v, label=f"{r.strategy} ({r.miou:.1f})", linewidth=1.0 + 0.4 * adaptive_left, zorder=2)
    ax.set_xlabel("video time (s)")
    ax.set_ylabel(f"mIoU (%), {window_s:g} s moving average")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="strategy (mean mIoU)",
              title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_miou(results: list[StreamResult], path: Path, title: str) -> None:
    fig = miou_figure(results, title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(out_dir: Path, source: VideoSource, results: list[StreamResult], config: AmsConfig,
                  teacher_spec: str, truth_spec: str) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    document = results_document(source, results, config, teacher_spec, truth_spec)
    (out_dir / "results.json").write_text(json.dumps(document, indent=2))
    traces = {r.strategy: {"times_s": r.times_s, "miou": r.miou_trace, "rate": r.rate_history,
                           "period": r.period_history, "skipped": r.skipped_rounds} for r in results}
    (out_dir / "traces.json").write_text(json.dumps(traces))
    plot_miou(results, out_dir / "miou_over_time.png", f"mIoU over time on {source.name}")
    return document
