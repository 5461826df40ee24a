"""Train the embedded tiny student on a generic mix of synthetic scenes.

    .venv/bin/python scripts/pretrain_tiny_student.py            # writes ams_ray/assets/tiny_student.pt
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

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from ams_ray.metrics import batch_miou
from ams_ray.students import EMBEDDED_TINY_WEIGHTS, TinyStudent
from ams_ray.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.video import decode_chunk, encode_chunk

TRAIN_SEED_BASE = 100_000
HELDOUT_SEED_BASE = 200_000


def generic_frames(seed_base: int, videos: int, per_video: int, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """`per_video` frames at random times of each of `videos` synthetic videos."""
    frames, labels = [], []
    for k in tqdm(range(videos), desc=desc, unit="video"):
        video = SyntheticVideo(seed_base + k, duration_s=300.0)
        rng = np.random.default_rng(seed_base + k)
        picks = sorted(rng.choice(video.num_frames, size=per_video, replace=False))
        rendered = [video.render(int(i)) for i in picks]
        chunk = np.stack([f for f, _ in rendered])
        frames.append(decode_chunk(encode_chunk(chunk), per_video))
        labels.append(np.stack([l for _, l in rendered]))
    return np.concatenate(frames), np.concatenate(labels)


def evaluate(model: TinyStudent, frames: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    scores = []
    with torch.no_grad():
        for i in range(0, len(frames), 32):
            pred = model(torch.from_numpy(frames[i : i + 32])).argmax(1).numpy()
            scores += batch_miou(labels[i : i + 32], pred, NUM_CLASSES)
    return float(np.mean(scores))


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
    heldout = generic_frames(HELDOUT_SEED_BASE, 100, 4, "held-out scenes")
    if args.evaluate_only:
        model = TinyStudent(NUM_CLASSES)
        model.load_state_dict(torch.load(args.out, weights_only=True))
        print(json.dumps({"heldout_miou": round(evaluate(model, *heldout), 2), "frames": len(heldout[0])}))
        return

    frames, labels = generic_frames(TRAIN_SEED_BASE, args.videos, args.per_video, "training scenes")
    model = TinyStudent(NUM_CLASSES)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=args.iterations)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    progress = tqdm(range(args.iterations), desc="pretraining", unit="step")
    for step in progress:
        model.train()
        idx = rng.choice(len(frames), size=args.batch_size, replace=False)
        x, y = torch.from_numpy(frames[idx]), torch.from_numpy(labels[idx]).long()
        if rng.random() < 0.5:
            x, y = x.flip(2), y.flip(2)
        loss = F.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.3f}")
    score = evaluate(model, *heldout)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(json.dumps({"heldout_miou": round(score, 2), "train_s": round(time.perf_counter() - start, 1),
                      "params": sum(p.numel() for p in model.parameters()), "out": str(args.out)}))


if __name__ == "__main__":
    main()
