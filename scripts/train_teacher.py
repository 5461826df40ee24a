"""Train the embedded teacher network on generic synthetic scenes.

    .venv/bin/python scripts/train_teacher.py                 # writes ams_ray/assets/teacher.pt (fp16)
    .venv/bin/python scripts/train_teacher.py --evaluate-only

Seeds: training draws from 300000+, the held-out check from 400000+; the student's pretraining
uses 100000+ and 200000+, and evaluation videos are below 100000, so the teacher never labels a
scene it was trained on, nor one the student was. Frames go through the H.264 chunk codec, as
every frame the teacher labels does. The weights are written every 250 steps, so a run cut
short still leaves the best so far in place.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ams_ray.pretraining import PretrainSettings, evaluate, pretrain, progress_bar, synthetic_frames
from ams_ray.students import EMBEDDED_TINY_WEIGHTS, TinyStudent
from ams_ray.synthetic import NUM_CLASSES
from ams_ray.teacher_network import EMBEDDED_TEACHER_WEIGHTS, TeacherNet

TRAIN_SEED_BASE = 300_000
HELDOUT_SEED_BASE = 400_000
SAVE_EVERY = 250


def save_fp16(model: TeacherNet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, tmp)
    tmp.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--per-video", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=EMBEDDED_TEACHER_WEIGHTS)
    parser.add_argument("--evaluate-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    heldout = synthetic_frames(HELDOUT_SEED_BASE, 100, 4, "held-out scenes")
    student = TinyStudent(NUM_CLASSES)
    student.load_state_dict(torch.load(EMBEDDED_TINY_WEIGHTS, weights_only=True))
    model = TeacherNet()
    if args.evaluate_only:
        model.load_state_dict({k: v.float() for k, v in torch.load(args.out, weights_only=True).items()})
        print(json.dumps({"teacher_heldout_miou": round(evaluate(model, heldout, NUM_CLASSES), 2),
                          "student_heldout_miou": round(evaluate(student, heldout, NUM_CLASSES), 2),
                          "frames": len(heldout)}))
        return
    training = synthetic_frames(TRAIN_SEED_BASE, args.videos, args.per_video, "training scenes")
    settings = PretrainSettings(args.iterations, args.batch_size, args.lr, augment=True)
    bar = progress_bar(args.iterations)

    def on_step(step: int, loss: float) -> None:
        bar(step, loss)
        if step % SAVE_EVERY == SAVE_EVERY - 1:
            save_fp16(model, args.out)

    start = time.perf_counter()
    pretrain(model, training, settings, on_step)
    save_fp16(model, args.out)
    print(json.dumps({"teacher_heldout_miou": round(evaluate(model, heldout, NUM_CLASSES), 2),
                      "student_heldout_miou": round(evaluate(student, heldout, NUM_CLASSES), 2),
                      "train_s": round(time.perf_counter() - start, 1),
                      "params": sum(p.numel() for p in model.parameters()),
                      "bytes": args.out.stat().st_size, "out": str(args.out)}))


if __name__ == "__main__":
    main()
