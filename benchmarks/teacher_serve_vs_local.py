"""The teacher behind Ray Serve against the same model in a plain in-process batched loop.

    python benchmarks/teacher_serve_vs_local.py --frames 256 --batch 8 --results-dir runs/teacher

Both label the same synthetic frames with the same backend (default: torchvision
DeepLabV3-MobileNetV3 with weights this script writes, since none can be downloaded here;
weights do not change the cost) and report frames/s; their ratio is Serve's overhead.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--callers", type=int, default=16, help="concurrent requests in flight against Serve")
    p.add_argument("--model", default="deeplabv3_mobilenet_v3_large")
    p.add_argument("--cpus", type=float, default=2.0, help="CPUs for the replica and the local loop's torch threads")
    p.add_argument("--results-dir", type=Path, default=Path("runs/teacher"))
    args = p.parse_args()
    from actors.loopback import use_loopback_only

    use_loopback_only()  # before ray is imported
    import torch
    from torchvision.models import segmentation

    from ams_ray.synthetic import SyntheticVideo
    from ams_ray.teachers import TeacherPool

    video = SyntheticVideo(0, duration_s=60.0)
    frames = [video.frame(i) for i in range(args.frames)]
    weights = Path(tempfile.mkdtemp()) / "teacher.pth"
    torch.save(getattr(segmentation, args.model)(weights=None, weights_backbone=None, num_classes=7).state_dict(), weights)
    spec = f"torchvision:{args.model}:{weights}"

    torch.set_num_threads(int(args.cpus))
    pool = TeacherPool(spec)
    pool.label_many([(None, 0, frames[0])])  # warm-up
    began = time.perf_counter()
    for i in range(0, len(frames), args.batch):
        pool.label_many([(None, j, f) for j, f in enumerate(frames[i : i + args.batch], i)])
    local_fps = len(frames) / (time.perf_counter() - began)

    import ray
    from ray import serve

    from actors.cluster import connect
    from serve.teacher import APP_NAME, teacher_app

    connect(None)
    serve.start(http_options={"host": "127.0.0.1"})
    handle = serve.run(teacher_app(spec, max_batch_size=args.batch, batch_wait_s=0.05, num_cpus=args.cpus),
                       name=APP_NAME, route_prefix=None)
    handle.label.remote((None, 0, frames[0])).result()
    began = time.perf_counter()
    batches, in_flight = [], []
    for i, frame in enumerate(frames):
        in_flight.append(handle.label.remote((None, i, frame)))
        if len(in_flight) >= args.callers:
            batches.append(in_flight.pop(0).result()[1])
    batches += [r.result()[1] for r in in_flight]
    serve_fps = len(frames) / (time.perf_counter() - began)
    serve.shutdown()
    ray.shutdown()
    result = {"model": args.model, "frames": len(frames), "size": "128x256", "batch": args.batch,
              "local_frames_per_s": round(local_fps, 2), "serve_frames_per_s": round(serve_fps, 2),
              "serve_over_local": round(serve_fps / local_fps, 3), "serve_mean_batch": float(np.mean(batches))}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "teacher.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
