"""Many devices, one server: the scaling benchmark.

    python benchmarks/multi_client.py --clients 32
    python benchmarks/multi_client.py --clients 32 --duration 60 --speed 0.125   # what a 2-core machine sustains
    python benchmarks/multi_client.py --clients 8 --speed 2 --scheduler concurrent --out runs/mc8
    python benchmarks/multi_client.py --clients 16 --scene-mix static:0.25,slow:0.5,fast:0.25 --scheduler gain
    python benchmarks/multi_client.py --clients 16 --address auto        # join a running cluster
    python benchmarks/multi_client.py --clients 6 --duration 60 --num-cpus 1 \
        --fault kill-trainer:stream-001@22 --fault kill-teacher@35          # inject faults, measure recovery
    python benchmarks/multi_client.py --clients 2 --videos a.mp4 b.mp4    # your own videos (a model teacher)
    python benchmarks/multi_client.py --clients 8 --streams-per-trainer 1 --lockstep   # the old shape
    python benchmarks/multi_client.py --clients 16 --transport http     # devices over HTTP, with tokens

Starts (or joins) Ray, deploys the shared Teacher on Serve, runs one emulated device per client
on distinct videos (the embedded default: synthetic seeds 0..N-1) and trainer hosts that
hold K streams each (default: one host per GPU, or per CPU core), and writes summary.json,
streams.csv, miou_over_time.png and staleness.png to --out. Hosts checkpoint their streams
to --checkpoint-store and resume them there when restarted. Says in the first minutes when
the teacher or the trainers cannot keep up, and what speed or layout would fit. Exits
non-zero when any stream failed (naming it and why) or when no stream applied a single
update (saying why).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tqdm import tqdm  # noqa: E402

from ams_ray.config import AmsConfig  # noqa: E402
from ams_ray.fleet.capacity import no_update_reason  # noqa: E402
from ams_ray.fleet.report import (  # noqa: E402
    http_figures,
    machine_memory,
    scheduling_figures,
    stream_rows,
    summarize,
    write_report,
)
from ams_ray.service.round_policy import SCHEDULERS  # noqa: E402

SERVE_PROBE_DEADLINE_ENV, SERVE_PROBE_DEADLINE_S = "RAY_SERVE_MAX_QUEUE_LENGTH_RESPONSE_DEADLINE_S", "10"


def expand_globs(paths: list[Path]) -> list[Path]:
    """`--videos 'cams/*.mp4'` (quoted, or from a shell that did not expand it): the matches,
    sorted; a path that exists or matches nothing is kept as given (and reported if missing)."""
    expanded: list[Path] = []
    for path in paths:
        matches = [] if path.exists() else sorted(glob.glob(str(path)))
        expanded += [Path(m) for m in matches] or [path]
    return expanded


def _label_directory(text: str) -> Path:
    return Path(text.removeprefix("labels:"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--duration", type=float, default=300.0, help="seconds of video per stream")
    p.add_argument("--speed", type=float, default=1.0, help="video seconds per wall second (1.0 = real time)")
    p.add_argument("--address", default=None, help="auto or HOST:PORT to join a cluster; default: start one on loopback")
    p.add_argument("--teacher", default="network",
                   help="network (the embedded teacher network, labelling pixels) | oracle (exact labels of "
                        "synthetic videos, no work) | labels:DIR | torchvision:NAME:WEIGHTS | MODULE:FACTORY")
    p.add_argument("--videos", nargs="+", type=Path, default=None,
                   help="one real video per client, shipped as bytes to its edge (scored only where truth exists)")
    p.add_argument("--truth", nargs="+", type=_label_directory, default=None, metavar="labels:DIR",
                   help="with --videos: one label directory per video (in order) that scores it, apart from the teacher")
    p.add_argument("--student", default="tiny")
    p.add_argument("--strategy", default="ams_gg10")
    p.add_argument("--scheduler", default="fifo", choices=SCHEDULERS,
                   help="which due round trains first, one per GPU or per CPU core at a time: fifo (in the order "
                        "they fell due; default), round_robin (the stream trained least recently), gain (the round "
                        "that buys the most mIoU per training second, with a fairness floor); concurrent: every "
                        "due round starts at once and they share the device")
    p.add_argument("--fairness-floor", type=float, default=4.0, metavar="PERIODS",
                   help="gain: no due round waits longer than this many training periods (default %(default)s)")
    p.add_argument("--hibernate-below", dest="hibernate_gain", type=float, default=4.0, metavar="POINTS",
                   help="gain: a stream whose next round would win fewer mIoU points (its model agrees with the "
                        "teacher as well as its training got it) asks for none (default %(default)s; 0: never)")
    p.add_argument("--scene-mix", default=None, metavar="KIND:SHARE,...",
                   help="cameras of the embedded default that differ: e.g. static:0.25,slow:0.5,fast:0.25 (static: "
                        "one scene, slow: a new one every 2-4 min, fast: every 20-40 s; default: all mixed, 30-120 s)")
    p.add_argument("--streams-per-trainer", type=int, default=None,
                   help="streams one trainer process hosts (default: all streams spread over one host per GPU, or "
                        "per CPU core; 1: a process per stream)")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="train a host's rounds that fall due together as one batched step (default: on GPUs; "
                        "off on CPUs, where it measured slower)")
    p.add_argument("--devices-per-edge-host", type=int, default=None, metavar="K",
                   help="emulated devices one edge process plays (default: one process per core; each device keeps "
                        "its own clock, model and connection, 15-18 MB measured instead of a ~95 MB process)")
    p.add_argument("--lockstep", action="store_true",
                   help="all streams upload and train in phase (default: each at a seeded random phase)")
    p.add_argument("--gpus-per-trainer", type=float, default=None,
                   help="GPU fraction per trainer; given alone, one stream per trainer")
    p.add_argument("--streams-per-gpu", type=int, default=None, help="sets --gpus-per-trainer to 1/N")
    p.add_argument("--teacher-replicas", type=int, default=1, help="fixed, or the least with --teacher-max-replicas")
    p.add_argument("--teacher-max-replicas", type=int, default=None,
                   help="autoscale the teacher on ongoing requests from --teacher-replicas up to this")
    p.add_argument("--teacher-batch", type=int, default=8)
    p.add_argument("--teacher-gpus", type=float, default=0.0)
    p.add_argument("--seed-base", type=int, default=0)
    p.add_argument("--num-cpus", type=int, default=None, help="logical CPUs of the loopback cluster this starts")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="each node's video cache (default: ~/.cache/ams-ray there; a new folder measures a cold start)")
    p.add_argument("--checkpoint-store", default=None,
                   help="directory or fsspec URL (s3://...) every node reaches; default: ~/.cache/ams-ray/checkpoints")
    p.add_argument("--deadline-s", type=float, default=None,
                   help="wall seconds after the start when streams still running are reported failed "
                        "(default: 2 x duration / speed + 120)")
    p.add_argument("--fault", action="append", default=[], type=_fault, metavar="SPEC",
                   help="kill-trainer:STREAM@S (the host holding STREAM, with all its streams) | kill-teacher@S | "
                        "kill-edge:STREAM@S (repeatable; S = wall seconds after the streams start)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="Ray's metrics export port when starting a cluster (Prometheus target 127.0.0.1:PORT)")
    p.add_argument("--metrics-flush-s", type=float, default=12.0,
                   help="keep actors this long after the run so Prometheus sees the final counts (0: no wait)")
    p.add_argument("--transport", choices=["ray", "http"], default="ray",
                   help="ray: devices are Ray actors calling trainers directly; http: each device runs the "
                        "standalone client (python -m ams_ray.device) against the HTTP ingress, with its own token")
    p.add_argument("--ingress-port", type=int, default=8000, help="loopback port of the ingress (--transport http)")
    p.add_argument("--out", type=Path, default=Path("runs/multi_client"))
    args = p.parse_args(argv)
    if args.videos:
        args.videos = expand_globs(args.videos)
        args.clients = len(args.videos)
    if args.streams_per_gpu:
        args.gpus_per_trainer = 1.0 / args.streams_per_gpu
    return args


def _fault(text: str):
    from ams_ray.fleet.faults import Fault

    try:
        return Fault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv=None) -> int:
    args = parse_args(argv)
    # Read when Ray Serve is imported. On a machine past capacity the teacher replica answers
    # a router's queue-length probe after Serve's 1 s cap, and Serve then warns on every probe,
    # blaming network latency; the run's own capacity warnings say what is wrong.
    os.environ.setdefault(SERVE_PROBE_DEADLINE_ENV, SERVE_PROBE_DEADLINE_S)
    if args.address is None:
        from actors.loopback import use_loopback_only

        use_loopback_only()  # before ray is imported
    import ray

    from actors.cluster import connect
    from ams_ray.fleet.faults import fault_outcomes
    from ams_ray.fleet.placement import PlacementError
    from ams_ray.fleet.plan import FleetConfig
    from serve.fleet import run_fleet

    connect(args.address, num_cpus=args.num_cpus, metrics_export_port=args.metrics_port)
    config = FleetConfig(clients=args.clients, duration_s=args.duration, speed=args.speed, teacher=args.teacher,
                         student=args.student, strategy=args.strategy, scheduler=args.scheduler, videos=args.videos,
                         fairness_floor_periods=args.fairness_floor, hibernate_gain=args.hibernate_gain,
                         scene_mix=args.scene_mix,
                         truth=args.truth,
                         gpus_per_trainer=args.gpus_per_trainer, streams_per_trainer=args.streams_per_trainer,
                         fused=args.fused, lockstep=args.lockstep, devices_per_edge_host=args.devices_per_edge_host,
                         teacher_replicas=args.teacher_replicas,
                         teacher_max_replicas=args.teacher_max_replicas,
                         teacher_batch=args.teacher_batch, teacher_gpus=args.teacher_gpus, seed_base=args.seed_base,
                         cache_dir=args.cache_dir, checkpoint_store=args.checkpoint_store,
                         deadline_s=args.deadline_s, faults=args.fault, metrics_flush_s=args.metrics_flush_s,
                         transport=args.transport, ingress_port=args.ingress_port)
    bar = tqdm(desc=f"{args.clients} streams at {args.speed:g}x", unit="frame")

    def progress(done: int, running: int) -> None:
        bar.update(done - bar.n)
        bar.set_postfix(running=running)

    def setup(line: str) -> None:
        bar.write(f"setup: {line}")

    try:
        result = run_fleet(config, progress, on_setup=setup, on_warning=bar.write)
    except (PlacementError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
        if args.address is None:
            ray.shutdown()
    summary = summarize(result.edges, result.trainers, result.failed, args.clients, result.wall_s, args.speed,
                        machine_memory(result.node_memory, result.started_wall),
                        AmsConfig.for_profile(config.profile).training.period_s, result.hosts,
                        config.teacher, config.teacher_replicas, result.server_cpu_s, result.teacher_load,
                        result.capacity_warnings)
    summary.update(http_figures(result.edges))
    summary["machine_cpu_s"] = result.machine_cpu_s  # on a one-machine run: everything, Serve's proxy included
    summary["setup_s"] = result.setup_s
    summary["scheduler"] = args.scheduler
    summary["lockstep"] = args.lockstep
    summary["faults"] = fault_outcomes(result.faults, result.edges, result.trainers)
    summary["scene_mix"] = args.scene_mix
    summary.update(scheduling_figures(result.edges, result.trainers, result.failed, args.speed,
                                      AmsConfig.for_profile(config.profile).training.period_s,
                                      result.calibrated_rounds_per_s))
    write_report(args.out, summary, stream_rows(result.edges, result.trainers, result.failed), result.edges)
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()}, indent=2))
    print(f"wrote {args.out}/summary.json, streams.csv, miou_over_time.png, staleness.png")
    for line in overload_lines(summary):
        print(line, file=sys.stderr)
    if result.failed:
        for sid, why in result.failed.items():
            print(f"FAILED {sid}: {why}", file=sys.stderr)
        return 1
    reason = no_update_reason(summary)
    if reason:
        print(f"FAILED: {reason}", file=sys.stderr)
        return 3
    return 0


def overload_lines(summary: dict) -> list[str]:
    """The overload counts that are not zero, one line each, for the console."""
    lines = []
    if summary["streams_without_update"]:
        lines.append(f"OVERLOAD {summary['streams_without_update']} of {summary['completed']} streams applied no "
                     f"update: {', '.join(summary['streams_without_update_ids'][:8])}")
    counts = {"upload timeouts": "upload_timeouts", "failed packet polls": "poll_failures",
              "packets resent": "packets_resent", "packets missed (superseded)": "packets_missed",
              "chunks shed (labelling backlog full)": "shed_chunks",
              "uploads told a lower rate (labelling backlog)": "rate_cuts",
              "scoring frames shed by the teacher": "teacher_scoring_shed"}
    lines += [f"OVERLOAD {summary[key]} {what}" for what, key in counts.items() if summary.get(key)]
    demand, capacity = summary["teacher_demand_frames_per_s"], summary["teacher_capacity_frames_per_s"]
    if lines and not (math.isnan(demand) or math.isnan(capacity)):
        lines.append(f"OVERLOAD teacher asked {demand:.2f} frames/s "
                     f"({summary['teacher_training_demand_frames_per_s']:.2f} for training), "
                     f"labels {capacity:.2f} frames/s flat out")
    return lines


if __name__ == "__main__":
    sys.exit(main())
