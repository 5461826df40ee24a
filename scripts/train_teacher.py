"""Train the embedded teacher network on generic synthetic scenes.

    .venv/bin/python scripts/train_teacher.py --workers 2     # writes ams_ray/models/assets/teacher.pt (fp16)
    .venv/bin/python scripts/train_teacher.py --evaluate-only
    .venv/bin/python scripts/train_teacher.py --init FIRST.pt # the second phase only, from the first's weights

Two phases, one command. The first trains everything but the self-attention block, which is
held at the identity (its output projection starts at zero and stays frozen); the second trains
all of it at a lower rate on more scenes. The embedded weights were made this way: the first
phase is the earlier teacher's training, which had no attention block, and the second adds it
without losing what the first learnt. `--device cuda` trains on a GPU under bf16 autocast.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ams_ray.accuracy import batch_miou, confusion_matrix
from ams_ray.data.synthetic import CLASS_NAMES, NUM_CLASSES
from ams_ray.evaluation.pretraining import (
    LabelledFrames,
    PretrainSettings,
    evaluate,
    predict,
    pretrain,
    progress_bar,
    synthetic_frames,
)
from ams_ray.models.students import build_student
from ams_ray.models.teacher_network import EMBEDDED_TEACHER_WEIGHTS, TeacherNet
from ams_ray.models.weights import load_state_dict_file

TRAIN_SEED_BASE = 300_000
HELDOUT_SEED_BASE = 400_000
SAVE_EVERY = 250


@dataclass(frozen=True)
class Phase:
    name: str
    videos: int
    iterations: int
    lr: float
    train_context: bool


def save_fp16(model: TeacherNet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({k: (v.half() if v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}, tmp)
    tmp.rename(path)


def run_phase(model: TeacherNet, phase: Phase, training: LabelledFrames, args: argparse.Namespace) -> None:
    for p in model.context.parameters():
        p.requires_grad_(phase.train_context)
    print(f"phase {phase.name}: {phase.iterations} steps on {len(training)} frames, peak lr {phase.lr}")
    bar = progress_bar(phase.iterations)

    def on_step(step: int, loss: float) -> None:
        bar(step, loss)
        if step % SAVE_EVERY == SAVE_EVERY - 1:
            save_fp16(model, args.out)

    pretrain(model, training, PretrainSettings(phase.iterations, args.batch_size, phase.lr, augment=True), on_step,
             args.device)
    save_fp16(model.cpu(), args.out)


def load_fp16(model: TeacherNet, path: Path, strict: bool = True) -> list[str]:
    """Load weights written by `save_fp16`; returns the layers the file lacks (with strict=False)."""
    missing, unexpected = model.load_state_dict(
        {k: v.float() for k, v in load_state_dict_file(path).items()}, strict=strict)
    if unexpected:
        raise SystemExit(f"error: {path} holds weights this network lacks: {unexpected[:3]}")
    return sorted({k.split(".")[0] for k in missing})


def error_breakdown(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Per-class IoU over all held-out pixels, and what mIoU would be if the one confusion
    this world makes hard by design (building against vegetation: scene-drawn colours and
    texture styles, and verges that may be either) were resolved."""
    cm = confusion_matrix(truth, predicted, NUM_CLASSES)
    hits = np.diag(cm)
    iou = 100 * hits / np.maximum(cm.sum(0) + cm.sum(1) - hits, 1)
    building, vegetation = CLASS_NAMES.index("building"), CLASS_NAMES.index("vegetation")
    swapped = np.isin(predicted, (building, vegetation)) & np.isin(truth, (building, vegetation)) & (predicted != truth)
    resolved = np.where(swapped, truth, predicted)
    return {"class_iou": {name: round(float(v), 1) for name, v in zip(CLASS_NAMES, iou)},
            "pixel_error": round(float((predicted != truth).mean()), 4),
            "building_vegetation_share_of_errors": round(float(swapped.sum() / max((predicted != truth).sum(), 1)), 3),
            "miou_with_building_vegetation_resolved": round(float(np.mean(batch_miou(truth, resolved, NUM_CLASSES))), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, nargs=2, default=[2000, 3000], metavar=("FIRST", "SECOND"),
                        help="training scenes per phase (the first phase uses the first FIRST of them)")
    parser.add_argument("--per-video", type=int, default=6)
    parser.add_argument("--iterations", type=int, nargs=2, default=[4000, 3500], metavar=("FIRST", "SECOND"))
    parser.add_argument("--lr", type=float, nargs=2, default=[2e-3, 1e-3], metavar=("FIRST", "SECOND"),
                        help="peak learning rate of each phase's one-cycle schedule")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="processes that render and encode the scenes")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (bf16 autocast)")
    parser.add_argument("--out", type=Path, default=EMBEDDED_TEACHER_WEIGHTS)
    parser.add_argument("--init", type=Path, help="skip the first phase: start the second from these weights "
                        "(written by the first phase, or by an earlier teacher without the attention block)")
    parser.add_argument("--evaluate-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    heldout = synthetic_frames(HELDOUT_SEED_BASE, 100, 4, "held-out scenes", args.workers)
    student = build_student("tiny", NUM_CLASSES)
    model = TeacherNet()
    if args.evaluate_only:  # weights without the attention block score as the network without it
        load_fp16(model, args.out, strict=False)
        predicted = predict(model, heldout.frames)
        print(json.dumps({"teacher_heldout_miou": round(float(np.mean(batch_miou(heldout.labels, predicted,
                                                                                 NUM_CLASSES))), 2),
                          "student_heldout_miou": round(evaluate(student, heldout, NUM_CLASSES), 2),
                          "frames": len(heldout), **error_breakdown(predicted, heldout.labels)}))
        return
    phases = [Phase("first", args.videos[0], args.iterations[0], args.lr[0], train_context=False),
              Phase("second", args.videos[1], args.iterations[1], args.lr[1], train_context=True)]
    if args.init:
        print(f"starting from {args.init}; layers it lacks: {load_fp16(model, args.init, strict=False)}")
        phases = phases[1:]
    training = synthetic_frames(TRAIN_SEED_BASE, max(p.videos for p in phases), args.per_video, "training scenes",
                                args.workers)
    start = time.perf_counter()
    for phase in phases:
        run_phase(model, phase, training.head(phase.videos * args.per_video), args)
    train_s = time.perf_counter() - start
    load_fp16(model, args.out)  # score the fp16 weights as written
    print(json.dumps({"teacher_heldout_miou": round(evaluate(model, heldout, NUM_CLASSES), 2),
                      "student_heldout_miou": round(evaluate(student, heldout, NUM_CLASSES), 2),
                      "train_s": round(train_s, 1), "device": args.device, "phases": [vars(p) for p in phases],
                      "batch_size": args.batch_size,
                      "params": sum(p.numel() for p in model.parameters()),
                      "bytes": args.out.stat().st_size, "out": str(args.out)}))


if __name__ == "__main__":
    main()
