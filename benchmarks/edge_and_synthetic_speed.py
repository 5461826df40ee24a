"""Speed of the embedded default's two hot loops, each on one core.

    .venv/bin/python benchmarks/edge_and_synthetic_speed.py --results-dir runs/speed

- synthetic video generation, frames/s at 128x256 (goal: >= 500);
- the tiny student in ONNX Runtime with one thread, frames/s at 128x256 (goal: >= 100),
  and torch on the same frames for reference.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ams_ray.config import TrainingConfig
from ams_ray.data.synthetic import NUM_CLASSES, SyntheticVideo
from ams_ray.device.runtime import DeviceModel
from ams_ray.learn.distill import OnlineDistiller, Strategy
from ams_ray.models.students import build_student


def _rate(fn, count: int) -> float:
    began = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", type=Path, default=Path("runs/speed"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    video = SyntheticVideo(0, duration_s=300.0)
    synthetic_fps = _rate(lambda i: video.render(i), 3000)
    student = build_student("tiny", NUM_CLASSES)
    distiller = OnlineDistiller(student, TrainingConfig(), Strategy())
    edge = DeviceModel(distiller.edge_bundle(128, 256), threads=1)
    frames = np.stack([video.frame(i) for i in range(0, 1000, 5)])
    edge.predict(frames[:1])
    onnx_fps = _rate(lambda i: edge.predict(frames[i % len(frames)][None]), 500)
    with torch.no_grad():
        torch_fps = _rate(lambda i: student(torch.from_numpy(frames[i % len(frames)][None])), 200)
    result = {"synthetic_frames_per_s": round(synthetic_fps), "tiny_student_onnx_fps": round(onnx_fps),
              "tiny_student_torch_fps": round(torch_fps), "params": sum(p.numel() for p in student.parameters()),
              "size": "128x256", "threads": 1}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "speed.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
