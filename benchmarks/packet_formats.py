"""AMS's packet format against ams-ray's compact one: bytes per update and the mIoU each yields.

    .venv/bin/python benchmarks/packet_formats.py --seed 0 --results-dir runs/packet_formats

Each run also encodes every update in the other format (the "shadow"), so the bytes are
compared on identical updates; the mIoU comes from running the stream with each format.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ams_ray.config import AmsConfig
from ams_ray.data.datasets import materialize_synthetic
from ams_ray.evaluation.compare import run_comparison


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--strategy", default="ams_gg10")
    parser.add_argument("--results-dir", type=Path, default=Path("runs/packet_formats"))
    args = parser.parse_args()
    base = AmsConfig.for_profile("cpu")
    source = materialize_synthetic(args.seed, args.duration, base.video.height, base.video.width)
    rows = []
    for encoding in ("ams", "compact"):
        config = base.with_overrides(packet_format=encoding)
        (result,) = run_comparison(source, "oracle", "tiny", config, [args.strategy], None, workers=1)
        rows.append({"format": encoding, "miou": round(result.miou, 2),
                     "bytes_per_update": round(result.mean_packet_bytes),
                     "other_format_bytes_same_updates": round(result.mean_shadow_packet_bytes),
                     "downlink_kbps": round(result.downlink_kbps, 2), "updates": result.updates_applied})
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "packet_formats.json").write_text(json.dumps(rows, indent=2))
    print(f"{'format':<8} {'mIoU':>6} {'B/update':>9} {'other fmt, same updates':>24} {'down Kbps':>9}")
    for r in rows:
        print(f"{r['format']:<8} {r['miou']:6.2f} {r['bytes_per_update']:9d} "
              f"{r['other_format_bytes_same_updates']:24d} {r['downlink_kbps']:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
