"""The teacher behind Ray Serve against the same model in a plain in-process batched loop.

    python benchmarks/teacher_serve_vs_local.py --frames 256 --batches 1 8 --results-dir runs/teacher

Both label the same synthetic frames (128x256) with the same teacher (default: the embedded
teacher network), with the same torch threads, on the same core: the local loop runs pinned
to `--core`, and so does the Serve replica, while the driver that sends Serve its requests is
pinned to another core so it does not take the replica's time. Serve is kept saturated (4
batches' worth of requests in flight). Frames/s per batch size, and their ratio (Serve's
overhead), go to stdout and teacher.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def local_frames_per_s(spec: str, frames: list[np.ndarray], batch: int) -> float:
    from ams_ray.teach.teachers import TeacherPool

    pool = TeacherPool(spec)
    pool.label_many([(None, 0, frames[0])])  # warm-up
    began = time.perf_counter()
    for i in range(0, len(frames), batch):
        pool.label_many([(None, j, f) for j, f in enumerate(frames[i:i + batch], i)])
    return len(frames) / (time.perf_counter() - began)


def serve_frames_per_s(spec: str, frames: list[np.ndarray], batch: int, threads: int, core: int) -> dict:
    from ray import serve

    from ams_ray.fleet.report import mean_teacher_batch
    from serve.teacher import APP_NAME, teacher_app

    handle = serve.run(teacher_app(spec, max_batch_size=batch, batch_wait_s=0.05, num_cpus=threads),
                       name=APP_NAME, route_prefix=None)
    replica = handle.process.remote().result(timeout_s=120)
    os.sched_setaffinity(replica["pid"], {core})
    handle.label.remote((None, 0, frames[0])).result(timeout_s=120)
    in_flight, sizes = [], []
    began = time.perf_counter()
    for i, frame in enumerate(frames):
        in_flight.append(handle.label.remote((None, i, frame)))
        if len(in_flight) >= 4 * batch:
            sizes.append(in_flight.pop(0).result(timeout_s=120)[1])
    sizes += [r.result(timeout_s=120)[1] for r in in_flight]
    fps = len(frames) / (time.perf_counter() - began)
    serve.delete(APP_NAME)
    return {"frames_per_s": fps, "mean_batch": mean_teacher_batch(sizes),
            "replica_torch_threads": replica["torch_threads"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="network", help="any teacher spec that labels pixels")
    p.add_argument("--frames", type=int, default=256)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    p.add_argument("--core", type=int, default=0, help="the core both the local loop and the replica run on")
    p.add_argument("--results-dir", type=Path, default=Path("runs/teacher"))
    args = p.parse_args()
    driver_cores = set(os.sched_getaffinity(0)) - {args.core}
    if not driver_cores:
        raise SystemExit("needs two cores: one for the teacher, one for the driver that feeds it")
    from actors.loopback import use_loopback_only

    use_loopback_only()  # before ray is imported
    import torch

    from ams_ray.data.synthetic import SyntheticVideo

    video = SyntheticVideo(0, duration_s=60.0)
    frames = [video.frame(i) for i in range(args.frames)]
    torch.set_num_threads(args.threads)
    os.sched_setaffinity(0, {args.core})
    local = {b: local_frames_per_s(args.teacher, frames, b) for b in args.batches}

    import ray
    from ray import serve

    from actors.cluster import connect

    os.sched_setaffinity(0, driver_cores)  # Ray's own processes, started from here, stay off the core too
    connect(None)
    serve.start(http_options={"host": "127.0.0.1"})
    try:
        served = {b: serve_frames_per_s(args.teacher, frames, b, args.threads, args.core) for b in args.batches}
    finally:
        serve.shutdown()
        ray.shutdown()
    rows = [{"batch": b, "local_frames_per_s": round(local[b], 2),
             "serve_frames_per_s": round(served[b]["frames_per_s"], 2),
             "serve_over_local": round(served[b]["frames_per_s"] / local[b], 3),
             "serve_mean_batch": round(served[b]["mean_batch"], 2),
             "replica_torch_threads": served[b]["replica_torch_threads"]} for b in args.batches]
    result = {"teacher": args.teacher, "frames": len(frames), "size": "128x256", "threads": args.threads,
              "core": args.core, "rows": rows}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "teacher.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
