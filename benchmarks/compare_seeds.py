"""The single-stream comparison on several synthetic seeds, with the gains the core issue asks for.

    .venv/bin/python benchmarks/compare_seeds.py --seeds 0 1 2 3 --results-dir runs/compare_seeds

Runs `python -m ams_ray compare` per seed (so each run is exactly what a user runs), then
writes one table, `summary.json`, and per-seed results under the results directory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--results-dir", type=Path, default=Path("runs/compare_seeds"))
    parser.add_argument("compare_args", nargs=argparse.REMAINDER, help="passed to `ams_ray compare` after --")
    args = parser.parse_args()
    extra = [a for a in args.compare_args if a != "--"]
    summary = []
    for seed in args.seeds:
        out = args.results_dir / f"seed{seed}"
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ams_ray", "compare", "--video", "synthetic", "--seed", str(seed),
                        "--duration", str(args.duration), "--out", str(out), *extra], check=True)
        wall = time.perf_counter() - began
        document = json.loads((out / "results.json").read_text())
        rows = {r["strategy"]: r for r in document["rows"]}
        entry = {"seed": seed, "wall_s": round(wall, 1), "rows": rows, "teacher": document["teacher"],
                 "truth": document["truth"], "teacher_miou": document["teacher_miou"]}
        if {"ams_gg10", "pretrained"} <= rows.keys():
            entry["gg10_gain_vs_pretrained"] = round(rows["ams_gg10"]["miou"] - rows["pretrained"]["miou"], 2)
            entry["gg10_gain_vs_pretrained_by_teacher"] = round(
                rows["ams_gg10"]["miou_vs_teacher"] - rows["pretrained"]["miou_vs_teacher"], 2)
        if {"ams_gg10", "one_time"} <= rows.keys():
            entry["gg10_gain_vs_one_time"] = round(rows["ams_gg10"]["miou"] - rows["one_time"]["miou"], 2)
        summary.append(entry)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    strategies = list(summary[0]["rows"])
    print(f"\nmIoU against {summary[0]['truth']} per seed, learning from {summary[0]['teacher']}")
    print(f"{'seed':>4} " + " ".join(f"{s:>16}" for s in strategies) + f" {'wall s':>7}")
    for entry in summary:
        cells = " ".join(f"{entry['rows'][s]['miou']:16.2f}" for s in strategies)
        print(f"{entry['seed']:>4} {cells} {entry['wall_s']:7.0f}")
    gains = []
    for entry in summary:
        if "gg10_gain_vs_pretrained" in entry:
            gg = entry["rows"]["ams_gg10"]
            gains.append(entry["gg10_gain_vs_pretrained"])
            versus_one_time = (f", {entry['gg10_gain_vs_one_time']:+.2f} vs one_time"
                               if "gg10_gain_vs_one_time" in entry else "")
            teacher = (f" (against the teacher's labels {entry['gg10_gain_vs_pretrained_by_teacher']:+.2f}; "
                       f"teacher {entry['teacher_miou']:.2f} against the truth)" if entry["teacher_miou"] else "")
            print(f"seed {entry['seed']}: ams_gg10 {entry['gg10_gain_vs_pretrained']:+.2f} vs pretrained"
                  f"{teacher}{versus_one_time}, up {gg['uplink_kbps']:.1f} Kbps, down {gg['downlink_kbps']:.1f} Kbps")
    if gains:
        print(f"mean ams_gg10 gain vs pretrained over {len(gains)} seeds: {sum(gains) / len(gains):+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
