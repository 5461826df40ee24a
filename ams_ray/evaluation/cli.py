"""`python -m ams_ray compare | extract-labels | pretrain-student ...`.

A mistake in what the user passed (a file, a spec, a plugin, a weights file) ends in one line
on stderr and exit code 2; only a bug in ams-ray itself shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ams_ray.config import AmsConfig, Profile

STUDENT_HELP = ("tiny | lraspp_mobilenet_v3_large | deeplabv3_mobilenet_v3_large, as NAME:WEIGHTS.pth or "
                "NAME:scratch; plain tiny is the embedded 7-class student")
TEACHER_HELP = ("network[:WEIGHTS] | oracle | labels:DIR | torchvision:NAME:WEIGHTS | MODULE:FACTORY "
                "(a plugin, see the README)")


def _compare(args: argparse.Namespace) -> int:
    from ams_ray.data.datasets import resolve_video
    from ams_ray.evaluation.compare import format_table, run_comparison, write_outputs
    from ams_ray.evaluation.simulate import default_truth
    from ams_ray.learn.strategies import DEFAULT_STRATEGIES

    config = AmsConfig.for_profile(args.profile)
    settings = _parse_settings(args.set)
    if args.one_time_window is not None:
        settings.setdefault("training", {})["one_time_window_s"] = args.one_time_window
    config = config.with_overrides(packet_format=args.packet_format, eval_every=args.eval_every,
                                   link={"downlink_kbps": args.link_kbps}, **settings)
    if args.video != "synthetic" and args.teacher in (None, "oracle"):
        print("error: a real video needs --teacher (labels:DIR, torchvision:NAME:WEIGHTS or MODULE:FACTORY); "
              "'oracle' exists only for synthetic videos, and the default 'network' knows only their classes",
              file=sys.stderr)
        return 2
    args.teacher = args.teacher or "network"
    source = resolve_video(args.video, args.seed, args.duration, config.video.height, config.video.width)
    if args.video != "synthetic":
        _note_squash(source.path, config)
    truth = args.truth or default_truth(source, args.teacher)
    if truth == args.teacher:
        print(f"note: no --truth for {source.name}: mIoU is against the teacher's labels", file=sys.stderr)
    strategies = args.strategies.split(",") if args.strategies else list(DEFAULT_STRATEGIES)
    results = run_comparison(source, args.teacher, args.student, config, strategies,
                             None if args.video == "synthetic" else args.duration, workers=args.workers,
                             truth_spec=truth)
    document = write_outputs(args.out, source, results, config, args.teacher, truth)
    print(f"learning from {args.teacher}, scored against {truth}"
          + (f" (the teacher scores {document['teacher_miou']:.2f} against it)" if document["teacher_miou"] else ""))
    print(format_table(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'miou_over_time.png'}")
    return 0


def _note_squash(video: Path, config: AmsConfig) -> None:
    """Say so when the student will see the video at another aspect ratio than it has."""
    from ams_ray.data.video import VideoReader

    h, w = VideoReader(video).native_size
    sh, sw = config.video.height, config.video.width
    if abs((w / h) / (sw / sh) - 1) > 0.02:
        print(f"note: {video.name} is {h}x{w}; the student sees it squashed to {sh}x{sw}. To keep its shape, "
              f"pass e.g. --set video.height={round(sw * h / w / 8) * 8} --set video.width={sw}", file=sys.stderr)


def _parse_settings(items: list[str]) -> dict[str, dict]:
    """`--set training.iterations=40` -> {"training": {"iterations": "40"}} (pydantic converts)."""
    sections: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set expects SECTION.FIELD=VALUE (e.g. training.iterations=40), got {item!r}")
        sections.setdefault(section, {})[field] = value
    return sections


def _extract_labels(args: argparse.Namespace) -> int:
    from ams_ray.teach.label_extraction import extract_labels

    store = extract_labels(args.video, args.teacher, args.out, args.label_size)
    height, width = store.label_size
    print(f"wrote {store.num_frames} label maps of {height}x{width} ({store.num_classes} classes) to {args.out}")
    return 0


def _pretrain_student(args: argparse.Namespace) -> int:
    import torch

    from ams_ray.data.label_store import LabelStore
    from ams_ray.evaluation.pretraining import (
        LabelledFrames,
        PretrainSettings,
        evaluate,
        pretrain,
        progress_bar,
        read_labelled_video,
    )
    from ams_ray.models.student_spec import SCRATCH
    from ams_ray.models.students import build_student

    if len(args.video) != len(args.labels):
        raise ValueError(f"{len(args.video)} --video for {len(args.labels)} --labels: give one label directory "
                         "per video, in the same order")
    class_counts = {str(d): LabelStore(d).num_classes for d in args.labels}
    classes = args.classes or next(iter(class_counts.values()))
    wrong = {d: n for d, n in class_counts.items() if n != classes}
    if wrong:
        raise ValueError(f"--classes {classes}, but label directories say otherwise: {wrong}")
    height, width = args.size or (AmsConfig.for_profile(args.profile).video.height,
                                  AmsConfig.for_profile(args.profile).video.width)
    torch.manual_seed(args.seed)
    clips = [read_labelled_video(v, d, height, width, args.frames_per_video) for v, d in zip(args.video, args.labels)]
    parts = [clip.split(args.heldout) for clip in clips]
    train, heldout = LabelledFrames.concat([p[0] for p in parts]), LabelledFrames.concat([p[1] for p in parts])
    spec = args.student if ":" in args.student else f"{args.student}:{SCRATCH}"
    model = build_student(spec, classes)
    before = evaluate(model, heldout, classes)
    print(f"{len(train)} training and {len(heldout)} held-out frames (the last {args.heldout:.0%} of each video) "
          f"at {height}x{width}; {spec} scores {before:.2f} mIoU on the held-out frames before training",
          file=sys.stderr)
    settings = PretrainSettings(args.iterations, args.batch_size, args.lr, augment=not args.no_augment,
                                seed=args.seed)
    pretrain(model, train, settings, progress_bar(args.iterations))
    after = evaluate(model, heldout, classes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    name = args.student.partition(":")[0]
    print(json.dumps({"heldout_miou": round(after, 2), "heldout_miou_before": round(before, 2),
                      "train_frames": len(train), "heldout_frames": len(heldout), "classes": classes,
                      "size": [height, width], "student": f"{name}:{args.out}"}))
    print(f"use it with --student {name}:{args.out}", file=sys.stderr)
    return 0


def _size(text: str) -> tuple[int, int]:
    from ams_ray.data.video import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ams_ray", description="Adaptive Model Streaming, one stream")
    sub = parser.add_subparsers(dest="command", required=True)
    profiles = [p.value for p in Profile]

    compare = sub.add_parser("compare", help="run every strategy on one video and compare them")
    compare.add_argument("--video", default="synthetic", help="'synthetic' (embedded default) or a video file")
    compare.add_argument("--seed", type=int, default=0, help="synthetic video seed (below 100000)")
    compare.add_argument("--duration", type=float, default=300.0, help="seconds of video to use")
    compare.add_argument("--teacher", default=None,
                         help=f"{TEACHER_HELP}; default for synthetic video: network (the embedded teacher network)")
    compare.add_argument("--truth", default=None,
                         help="labels to score against, apart from the teacher: oracle (exact labels, the default for "
                              "synthetic video) or labels:DIR; default for a real video: the teacher's own labels")
    compare.add_argument("--student", default="tiny", help=STUDENT_HELP)
    compare.add_argument("--profile", choices=profiles, default=Profile.CPU.value)
    compare.add_argument("--strategies", default="", help="comma-separated subset (default: the paper's table)")
    compare.add_argument("--packet-format", choices=["compact", "ams"], default="compact")
    compare.add_argument("--eval-every", type=int, default=5, help="score every k-th frame")
    compare.add_argument("--link-kbps", type=float, default=1000.0, help="downlink rate that delays updates")
    compare.add_argument("--one-time-window", type=float, default=None, metavar="S",
                         help="seconds of video the one_time baseline trains on (default 60)")
    compare.add_argument("--workers", type=int, default=2, help="strategies run in parallel")
    compare.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                         help="override any config field, e.g. --set training.iterations=40 (repeatable)")
    compare.add_argument("--out", type=Path, default=Path("runs/compare"))
    compare.set_defaults(func=_compare)

    extract = sub.add_parser("extract-labels", help="label every frame of a video with a teacher, once")
    extract.add_argument("--video", type=Path, required=True)
    extract.add_argument("--teacher", required=True, help=TEACHER_HELP)
    extract.add_argument("--label-size", type=_size, default=None, metavar="HxW",
                         help="the teacher sees each frame scaled to fit inside HxW, aspect ratio kept (no pad, "
                              "no crop); default: the video's own size, as many pixels as the camera gives")
    extract.add_argument("--out", type=Path, required=True)
    extract.set_defaults(func=_extract_labels)

    pre = sub.add_parser("pretrain-student", help="train a student for your classes on labelled videos")
    pre.add_argument("--video", type=Path, action="append", required=True, help="repeatable, paired with --labels")
    pre.add_argument("--labels", type=Path, action="append", required=True, help="label directory of that video")
    pre.add_argument("--student", default="tiny",
                     help="architecture (from random weights), or NAME:WEIGHTS.pth to start from weights")
    pre.add_argument("--classes", type=int, default=None, help="class count (default: the label directories')")
    pre.add_argument("--profile", choices=profiles, default=Profile.CPU.value,
                     help="train at this profile's student size (cpu 128x256, paper 256x512)")
    pre.add_argument("--size", type=_size, default=None, metavar="HxW", help="train at HxW instead")
    pre.add_argument("--iterations", type=int, default=1500)
    pre.add_argument("--batch-size", type=int, default=16)
    pre.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    pre.add_argument("--heldout", type=float, default=0.2, help="fraction held out at the end of each video")
    pre.add_argument("--frames-per-video", type=int, default=1000, help="evenly spaced frames read per video")
    pre.add_argument("--no-augment", action="store_true", help="flips only: no random zoom or colour jitter")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--out", type=Path, required=True)
    pre.set_defaults(func=_pretrain_student)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # VideoError and TeacherPluginError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
