"""Summaries, tables and plots of a multi-stream run, from the per-stream reports.

Pure functions of plain dicts (what the Ray actors return), so they are tested without Ray
and reused by every benchmark that runs a fleet.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ams_ray.accuracy import MiouTrace  # noqa: E402
from ams_ray.data.datasets import SyntheticSpec  # noqa: E402

STREAM_COLUMNS = ("stream_id", "scenes", "frames", "miou", "pretrained_miou", "miou_gain", "miou_vs_teacher",
                  "uplink_kbps", "downlink_kbps", "updates_applied", "p95_staleness_s", "max_lag_s", "train_seconds",
                  "rounds", "rounds_deferred", "longest_round_wait_video_s", "failed")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def _mean_memory(reports: list[dict], key: str) -> float:
    values = [r["memory_mb"][key] for r in reports if r.get("memory_mb")]
    return float(np.mean(values)) if values else math.nan


def machine_memory(node_reports: list[dict], started_wall: float) -> dict:
    """Memory in use (GiB, total - available) from every node's samples (`NodeMemory`),
    summed over machines: nodes that share a machine (a test cluster) count once.
    `baseline_memory_gib` is at the streams' start, after setup; `idle_memory_gib` before it."""
    machines: dict[str, dict] = {}
    for report in node_reports:
        if report["samples"]:
            machines.setdefault(report["hostname"], report)
    if not machines:
        return {"peak_memory_gib": math.nan, "baseline_memory_gib": math.nan, "idle_memory_gib": math.nan,
                "machines": 0}

    def at_start(samples: list) -> float:
        return next((gib for t, gib in samples if t >= started_wall), samples[-1][1])

    return {"peak_memory_gib": sum(max(g for _, g in r["samples"]) for r in machines.values()),
            "baseline_memory_gib": sum(at_start(r["samples"]) for r in machines.values()),
            "idle_memory_gib": sum(r["samples"][0][1] for r in machines.values()),
            "machines": len(machines)}


def mean_teacher_batch(batch_sizes: list[int]) -> float:
    """Frames / batches. Each labelled frame reports the size b of the batch it rode in, so a
    batch of b frames appears b times: it counts as b x (1/b) = 1 batch. (The mean of the
    per-frame sizes would weigh large batches twice: batches of 8 and 2 give 6.8, not 5.)"""
    return len(batch_sizes) / sum(1.0 / b for b in batch_sizes) if batch_sizes else math.nan


def http_figures(edges: list[dict]) -> dict:
    """What the HTTP path costs, over every device that reached the service by HTTP: bytes on
    the wire (request and status lines, headers, bodies) per payload byte for chunk uploads
    and packet fetches (the model download, once per device, is left out), and request
    latency p50/p95 of chunk uploads (packet requests are long-polls, mostly waiting for a round)."""
    reports = [e["http"] for e in edges if e.get("http")]
    if not reports:
        return {"transport": "ray"}
    streaming = [r["routes"][name] for r in reports for name in ("chunks", "packets") if name in r["routes"]]
    payload, wire = sum(r["payload_bytes"] for r in streaming), sum(r["wire_bytes"] for r in streaming)
    uploads = [t for r in reports for t in r["routes"].get("chunks", {}).get("latency_s", [])]
    return {"transport": "http", "http_requests": sum(r["requests"] for r in reports),
            "http_retries": sum(r["retries"] for r in reports), "http_payload_bytes": payload, "http_wire_bytes": wire,
            "http_overhead_ratio": wire / payload if payload else math.nan,
            "http_chunk_latency_p50_s": _percentile(uploads, 50), "http_chunk_latency_p95_s": _percentile(uploads, 95)}


def summarize(edges: list[dict], trainers: list[dict], failed: dict[str, str], clients: int, wall_s: float,
              speed: float, memory: dict, period_s: float = 10.0, hosts: list[dict] | None = None,
              teacher: str = "", teacher_replicas: int = 1, server_cpu_s: dict[str, float] | None = None,
              teacher_load: dict | None = None, capacity_warnings: list[str] | None = None) -> dict:
    """The run's headline figures. Staleness is in wall seconds; `p95_staleness_video_s`
    (x speed) compares it with the training period, which is in video seconds. `memory`
    comes from `machine_memory`; `hosts` are the trainer hosts' reports (one per process).
    mIoU is against the truth; `mean_miou_vs_teacher` against the teacher's labels of a sample
    of the same frames, and `teacher_miou` is the teacher against the truth there. `server_cpu_s`:
    CPU seconds over the run of the teacher and of the trainer hosts, whose ratio is the share
    of the server's CPU the teacher takes. `teacher_load`: one teacher replica's counts over
    the run (`CapacityWatch.run_load`); `capacity_warnings`: what the run said about overload.
    The overload block (streams without an update, timeouts, resent, missed and shed) is what
    a run past capacity shows first."""
    teacher_load = teacher_load or {}
    server_cpu_s = server_cpu_s or {}
    server_cpu = server_cpu_s.get("teacher", math.nan) + server_cpu_s.get("trainers", math.nan)
    staleness = [s for e in edges for s in e["staleness_s"]]
    p95 = _percentile(staleness, 95)
    batches = [b for t in trainers for b in t["teacher_batches"]]
    ok = [e for e in edges if e["stream_id"] not in failed]
    scored = [e for e in ok if not math.isnan(e["miou"])]  # a real video without truth labels is not scored
    hosts = hosts or []
    host_pss = [h["memory_mb"]["pss_mb"] for h in hosts if h.get("memory_mb")]
    hosted = sum(len(h["streams"]) for h in hosts if h.get("memory_mb"))
    rounds = sum(t["rounds"] for t in trainers)
    peak = memory.get("peak_memory_gib", math.nan)
    return {
        "clients": clients,
        "completed": len(ok),
        "failed": len(failed),
        "failures": failed,
        "scored": len(scored),
        "mean_miou": float(np.mean([e["miou"] for e in scored])) if scored else math.nan,
        "mean_pretrained_miou": float(np.mean([e["pretrained_miou"] for e in scored])) if scored else math.nan,
        "mean_miou_gain": float(np.mean([e["miou"] - e["pretrained_miou"] for e in scored])) if scored else math.nan,
        "mean_miou_vs_teacher": _mean_known(e.get("miou_vs_teacher", math.nan) for e in ok),
        "teacher": teacher,
        "teacher_miou": _mean_known(e.get("teacher_miou", math.nan) for e in scored),
        "p50_staleness_s": _percentile(staleness, 50),
        "p95_staleness_s": p95,
        "p95_staleness_video_s": p95 * speed,
        "training_period_s": period_s,
        "keeps_up": bool(p95 * speed <= period_s),
        "uplink_kbps": float(np.mean([e["uplink_kbps"] for e in edges])) if edges else math.nan,
        "downlink_kbps": float(np.mean([e["downlink_kbps"] for e in edges])) if edges else math.nan,
        "teacher_frames_per_s": len(batches) / wall_s if wall_s else math.nan,
        "mean_teacher_batch": mean_teacher_batch(batches),
        "teacher_cpu_share": server_cpu_s.get("teacher", math.nan) / server_cpu if server_cpu else math.nan,
        "server_cpu_s": server_cpu_s,
        "teacher_eval_frames_per_s": sum(e.get("teacher_evaluations", 0) for e in edges) / wall_s if wall_s
        else math.nan,  # frames edges had labelled only to score against the teacher
        "teacher_evaluations_skipped": sum(e.get("teacher_evaluations_skipped", 0) for e in edges),
        # seconds the teacher spent in batches (training and scoring frames) per second, per replica
        "teacher_busy_fraction": (sum(t.get("teacher_seconds", 0.0) for t in trainers)
                                  + sum(e.get("teacher_seconds", 0.0) for e in edges)) / (wall_s * teacher_replicas)
        if wall_s else math.nan,
        "trainer_busy_fraction": float(np.mean([t["train_seconds"] for t in trainers])) / wall_s if trainers else math.nan,
        # machine-wide (total - available), Ray's own processes included; GiB = 2**30 bytes
        "peak_memory_gib": peak,
        "peak_memory_gb": peak * 2**30 / 1e9,
        "baseline_memory_gib": memory.get("baseline_memory_gib", math.nan),
        "idle_memory_gib": memory.get("idle_memory_gib", math.nan),
        "memory_per_stream_gib": peak / clients if clients else math.nan,
        "memory_per_stream_mb": (peak - memory.get("idle_memory_gib", math.nan)) * 1024 / clients if clients
        else math.nan,  # what each stream adds to the machine: peak over idle, MiB
        "trainer_hosts": len(hosts),
        "streams_per_trainer": max((len(h["streams"]) for h in hosts), default=0),
        "fused": any(h["fused"] for h in hosts),
        "rounds_per_step": float(np.mean([h["rounds_per_step"] for h in hosts if h["steps"]])) if any(
            h["steps"] for h in hosts) else math.nan,
        "trainer_pss_mb": float(np.mean(host_pss)) if host_pss else math.nan,  # per process, at the end
        "trainer_mb_per_stream": sum(host_pss) / hosted if hosted else math.nan,
        "edge_pss_mb": _mean_memory(edges, "pss_mb"),  # per edge process
        "edge_mb_per_device": _mean_known(e["memory_mb"]["pss_mb"] / e.get("devices_in_process", 1)
                                          for e in edges if e.get("memory_mb")),
        "devices_per_edge_host": max((e.get("devices_in_process", 1) for e in edges), default=0),
        # CPU per minute of wall time each stream ran: the server's (teacher and trainer hosts) apart from
        # the emulated devices' (their edge processes' share, from when they started playing)
        "server_cpu_s_per_stream_minute": server_cpu / (len(ok) * wall_s / 60) if ok and wall_s else math.nan,
        "edge_cpu_s_per_stream_minute": (sum(e["edge_cpu_s"] for e in edges if "edge_cpu_s" in e)
                                         / (len(ok) * wall_s / 60)) if ok and wall_s and any(
            "edge_cpu_s" in e for e in edges) else math.nan,
        "train_seconds_per_round": sum(t["train_seconds"] for t in trainers) / rounds if rounds else math.nan,
        # the training thread's CPU time: what a round costs when it has a core to itself
        "train_cpu_seconds_per_round": sum(t.get("train_cpu_seconds", math.nan) for t in trainers) / rounds
        if rounds else math.nan,
        "max_lag_s": max((e["max_lag_s"] for e in edges), default=math.nan),
        "trainer_restarts": sum(h["restarted"] for h in hosts),  # processes Ray restarted
        "streams_restarted": sum(t["restarted"] for t in trainers),  # streams that resumed in one
        "unlabelled_chunks": sum(t["unlabelled_chunks"] for t in trainers),
        "checkpoints_written": sum(t["checkpoint"]["written"] for t in trainers),
        # --- overload: what a run past capacity shows first
        "mean_updates_applied": float(np.mean([e["updates_applied"] for e in ok])) if ok else math.nan,
        "streams_without_update": sum(1 for e in ok if e["updates_applied"] == 0),
        "streams_without_update_ids": sorted(e["stream_id"] for e in ok if e["updates_applied"] == 0),
        "rounds": rounds,
        "upload_timeouts": sum(e.get("upload_timeouts", 0) for e in edges),
        "poll_failures": sum(e.get("poll_failures", 0) for e in edges),
        "packets_resent": sum(t.get("packets_resent", 0) for t in trainers),
        "packets_missed": sum(e.get("packets_missed", 0) for e in edges),
        # made by a trainer, never received by its device (a run's last packets, when the drain ends first)
        "packets_undelivered": sum(t.get("packets_posted", 0) for t in trainers
                                   if t["stream_id"] in {e["stream_id"] for e in edges})
        - sum(e["updates_applied"] + len(e["rejected_packets"]) for e in edges),
        "rejected_packets": sum(len(e["rejected_packets"]) for e in edges),
        "shed_chunks": sum(t.get("shed_chunks", 0) for t in trainers),
        "rate_cuts": sum(t.get("rate_cuts", 0) for t in trainers),
        "max_label_backlog": max((t.get("max_label_backlog", 0) for t in trainers), default=0),
        # wall seconds from a chunk entering its stream's backlog to its labels
        "p95_label_wait_s": _percentile([w for t in trainers for w in t.get("label_wait_s", [])], 95),
        "teacher_training_frames": len(batches),
        "teacher_scoring_shed": sum(e.get("teacher_evaluations_shed", 0) for e in edges),
        "teacher_capacity_frames_per_s": teacher_load.get("capacity_fps", math.nan),
        "teacher_demand_frames_per_s": teacher_load.get("demand_fps", math.nan),
        "teacher_training_demand_frames_per_s": teacher_load.get("training_demand_fps", math.nan),
        "capacity_warnings": list(capacity_warnings or []),
        "wall_s": wall_s,
        "speed": speed,
    }


def _mean_known(values) -> float:
    known = [v for v in values if not math.isnan(v)]
    return float(np.mean(known)) if known else math.nan


def scene_kind(edge: dict) -> str:
    """The scene kind of a stream's synthetic video (`SceneMix`), or "file" for a real one."""
    spec = SyntheticSpec.from_key(edge.get("video"))
    return spec.scenes if spec is not None else "file"


def scheduling_figures(edges: list[dict], trainers: list[dict], failed: dict[str, str], speed: float,
                       period_s: float, calibrated_rounds_per_s: float = math.nan) -> dict:
    """Where training went: capacity C (measured on the fly: each host's rounds over its
    training seconds, summed; and as calibrated before the start), the demand against it,
    rounds per stream, the worst streams' gain, deferred rounds, reverts to the pretrained
    model, the longest wait of a due round, and the same by scene kind."""
    by_host: dict[str, list[dict]] = {}
    for t in trainers:
        by_host.setdefault(t.get("host", t["stream_id"]), []).append(t)
    capacity = sum(sum(t["rounds"] for t in ts) / busy for ts in by_host.values()
                   if (busy := sum(t["train_seconds"] for t in ts)) > 0) or math.nan
    demand = len(edges) * speed / period_s
    rounds = {t["stream_id"]: t["rounds"] for t in trainers}
    scored = [e for e in edges if e["stream_id"] not in failed and not math.isnan(e["miou"])]
    deferred: dict[str, int] = {}
    for t in trainers:
        for reason, n in t.get("deferred_rounds", {}).items():
            deferred[reason] = deferred.get(reason, 0) + n
    return {"capacity_rounds_per_s": capacity, "calibrated_capacity_rounds_per_s": calibrated_rounds_per_s,
            "demand_rounds_per_s": demand, "load": demand / capacity,
            **_gain_and_rounds(scored, rounds), "rounds_deferred": deferred,
            "reverts": sum(t.get("reverts", 0) for t in trainers),
            "longest_round_wait_video_s": max((t.get("longest_round_wait_video_s", 0.0) for t in trainers),
                                              default=math.nan),
            "by_scene": {kind: _gain_and_rounds([e for e in scored if scene_kind(e) == kind], rounds)
                         for kind in sorted({scene_kind(e) for e in scored})}}


def _gain_and_rounds(edges: list[dict], rounds: dict[str, int]) -> dict:
    gains = [e["miou"] - e["pretrained_miou"] for e in edges]
    return {"streams": len(edges), "mean_miou_gain": float(np.mean(gains)) if gains else math.nan,
            "p10_miou_gain": _percentile(gains, 10),
            "rounds_per_stream": float(np.mean([rounds.get(e["stream_id"], 0) for e in edges])) if edges else math.nan}


def stream_rows(edges: list[dict], trainers: list[dict], failed: dict[str, str]) -> list[dict]:
    by_stream = {t["stream_id"]: t for t in trainers}
    rows = []
    for e in edges:
        trainer = by_stream.get(e["stream_id"], {})
        rows.append({
            "stream_id": e["stream_id"], "scenes": scene_kind(e), "frames": e["frames"], "miou": round(e["miou"], 3),
            "pretrained_miou": round(e["pretrained_miou"], 3), "miou_gain": round(e["miou"] - e["pretrained_miou"], 3),
            "miou_vs_teacher": round(e.get("miou_vs_teacher", math.nan), 3),
            "uplink_kbps": round(e["uplink_kbps"], 3), "downlink_kbps": round(e["downlink_kbps"], 3),
            "updates_applied": e["updates_applied"], "p95_staleness_s": round(_percentile(e["staleness_s"], 95), 3),
            "max_lag_s": round(e["max_lag_s"], 3), "train_seconds": round(trainer.get("train_seconds", 0.0), 3),
            "rounds": trainer.get("rounds", 0), "rounds_deferred": sum(trainer.get("deferred_rounds", {}).values()),
            "longest_round_wait_video_s": round(trainer.get("longest_round_wait_video_s", 0.0), 3),
            "failed": failed.get(e["stream_id"], ""),
        })
    reported = {r["stream_id"] for r in rows}
    rows += [{**{c: "" for c in STREAM_COLUMNS}, "stream_id": s, "failed": why} for s, why in failed.items()
             if s not in reported]
    return rows


def _nan_to_null(value):
    """JSON has no NaN: a figure that could not be measured is written as null, which every
    reader parses (Python's default would write NaN, which strict parsers such as jq refuse)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_null(v) for v in value]
    return value


def write_report(out_dir: Path, summary: dict, rows: list[dict], edges: list[dict]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(_nan_to_null(summary), indent=2, allow_nan=False))
    with open(out_dir / "streams.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=STREAM_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    grid = np.arange(0.0, max((e["times_s"][-1] for e in edges if e["times_s"]), default=0.0), 1.0)
    smoothed = []
    for e in edges:
        t, v = MiouTrace(e["times_s"], e["miou_trace"]).windowed(10.0)
        ax.plot(t, v, linewidth=0.7, alpha=0.35)
        if len(t):
            smoothed.append(np.interp(grid, t, v, right=np.nan))
    if smoothed and len(grid):
        ax.plot(grid, np.nanmean(smoothed, axis=0), color="black", linewidth=2.2, label="mean over streams")
        ax.legend(loc="lower right")
    ax.set_xlabel("video time (s)")
    ax.set_ylabel("mIoU (%), 10 s moving average")
    ax.set_title(f"mIoU over time, {len(edges)} streams (mean gain {summary['mean_miou_gain']:+.1f})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "miou_over_time.png", dpi=110)
    plt.close(fig)
    staleness = [s for e in edges for s in e["staleness_s"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(staleness, bins=40, color="tab:orange")
    ax.axvline(summary["p95_staleness_s"], color="k", linestyle="--", label=f"p95 {summary['p95_staleness_s']:.1f} s")
    ax.set_xlabel("update staleness (s): training due -> packet applied on the edge")
    ax.set_ylabel("updates")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "staleness.png", dpi=110)
    plt.close(fig)
