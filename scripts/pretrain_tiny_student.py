"""Train the embedded tiny student on a generic mix of synthetic scenes.

    .venv/bin/python scripts/pretrain_tiny_student.py            # writes ams_ray/models/assets/tiny_student.pt
    .venv/bin/python scripts/pretrain_tiny_student.py --evaluate-only

Seeds: training draws from 100000+ and the held-out check from 200000+, both disjoint from
the evaluation videos (seeds below 100000), so the adaptation benchmark never tests the
student on scenes it was pretrained on. Frames go through the H.264 chunk codec first, as
every frame the server trains on does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ams_ray.data.synthetic import NUM_CLASSES
from ams_ray.evaluation.pretraining import PretrainSettings, evaluate, pretrain, progress_bar, synthetic_frames
from ams_ray.models.students import EMBEDDED_TINY_WEIGHTS, TinyStudent

TRAIN_SEED_BASE = 100_000
HELDOUT_SEED_BASE = 200_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--per-video", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=EMBEDDED_TINY_WEIGHTS)
    parser.add_argument("--evaluate-only", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    heldout = synthetic_frames(HELDOUT_SEED_BASE, 100, 4, "held-out scenes")
    if args.evaluate_only:
        model = TinyStudent(NUM_CLASSES)
        model.load_state_dict(torch.load(args.out, weights_only=True))
        score = evaluate(model, heldout, NUM_CLASSES)
        print(json.dumps({"heldout_miou": round(score, 2), "frames": len(heldout)}))
        return

    training = synthetic_frames(TRAIN_SEED_BASE, args.videos, args.per_video, "training scenes")
    model = TinyStudent(NUM_CLASSES)
    settings = PretrainSettings(args.iterations, args.batch_size, args.lr, augment=False)
    start = time.perf_counter()
    pretrain(model, training, settings, progress_bar(args.iterations))
    score = evaluate(model, heldout, NUM_CLASSES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(json.dumps({"heldout_miou": round(score, 2), "train_s": round(time.perf_counter() - start, 1),
                      "params": sum(p.numel() for p in model.parameters()), "out": str(args.out)}))


if __name__ == "__main__":
    main()
