"""`python -m ams_ray compare ...` and `python -m ams_ray extract-labels ...`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from ams_ray.config import AmsConfig, Profile


def _compare(args: argparse.Namespace) -> int:
    from ams_ray.compare import format_table, run_comparison, write_outputs
    from ams_ray.datasets import resolve_video
    from ams_ray.simulate import DEFAULT_STRATEGIES

    config = AmsConfig.for_profile(args.profile)
    config = config.with_overrides(packet_format=args.packet_format, eval_every=args.eval_every,
                                   link={"downlink_kbps": args.link_kbps}, **_parse_settings(args.set))
    if args.video != "synthetic" and args.teacher == "oracle":
        print("error: a real video needs --teacher (labels:DIR, torchvision:NAME:WEIGHTS or MODULE:FACTORY); "
              "'oracle' exists only for synthetic videos", file=sys.stderr)
        return 2
    source = resolve_video(args.video, args.seed, args.duration, config.video.height, config.video.width)
    strategies = args.strategies.split(",") if args.strategies else list(DEFAULT_STRATEGIES)
    results = run_comparison(source, args.teacher, args.student, config, strategies,
                             None if args.video == "synthetic" else args.duration, workers=args.workers)
    write_outputs(args.out, source, results, config)
    print(format_table(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'miou_over_time.png'}")
    return 0


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
    from ams_ray.label_store import LabelStore
    from ams_ray.teachers import build_teacher, checked_labels
    from ams_ray.video import VideoReader

    config = AmsConfig.for_profile(args.profile)
    reader = VideoReader(args.video, config.video.height, config.video.width)
    teacher = build_teacher(args.teacher)  # labels the pixels (or reads labels:DIR) of a real file
    writer = LabelStore.create(args.out, teacher.num_classes)
    for index, frame in enumerate(tqdm(reader, total=reader.num_frames_hint, unit="frame", desc="labelling")):
        writer.write(checked_labels(teacher, frame[None], [index])[0])
    store = writer.close()
    print(f"wrote {store.num_frames} label maps to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ams_ray", description="Adaptive Model Streaming, one stream")
    sub = parser.add_subparsers(dest="command", required=True)

    compare = sub.add_parser("compare", help="run every strategy on one video and compare them")
    compare.add_argument("--video", default="synthetic", help="'synthetic' (embedded default) or a video file")
    compare.add_argument("--seed", type=int, default=0, help="synthetic video seed (below 100000)")
    compare.add_argument("--duration", type=float, default=300.0, help="seconds of video to use")
    compare.add_argument("--teacher", default="oracle", help="oracle | labels:DIR | torchvision:NAME:WEIGHTS | MODULE:FACTORY")
    compare.add_argument("--student", default="tiny", help="tiny | lraspp_mobilenet_v3_large | deeplabv3_mobilenet_v3_large [:WEIGHTS]")
    compare.add_argument("--profile", choices=[p.value for p in Profile], default=Profile.CPU.value)
    compare.add_argument("--strategies", default="", help="comma-separated subset (default: the paper's table)")
    compare.add_argument("--packet-format", choices=["compact", "ams"], default="compact")
    compare.add_argument("--eval-every", type=int, default=5, help="score every k-th frame")
    compare.add_argument("--link-kbps", type=float, default=1000.0, help="downlink rate that delays updates")
    compare.add_argument("--workers", type=int, default=2, help="strategies run in parallel")
    compare.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                         help="override any config field, e.g. --set training.iterations=40 (repeatable)")
    compare.add_argument("--out", type=Path, default=Path("runs/compare"))
    compare.set_defaults(func=_compare)

    extract = sub.add_parser("extract-labels", help="label every frame of a video with a teacher, once")
    extract.add_argument("--video", required=True)
    extract.add_argument("--teacher", required=True)
    extract.add_argument("--profile", choices=[p.value for p in Profile], default=Profile.CPU.value)
    extract.add_argument("--out", type=Path, required=True)
    extract.set_defaults(func=_extract_labels)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
