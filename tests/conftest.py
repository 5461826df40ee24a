"""Shared fixtures: short synthetic videos written through the real H.264 path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from actors.loopback import use_loopback_only
from tests.ray_session import shutdown_ray
from tests.source_tree import copy_source

use_loopback_only()  # before any test imports ray: test clusters stay on 127.0.0.1
torch.set_num_threads(1)
_session_status: list[int] = []


def pytest_sessionfinish(session, exitstatus) -> None:
    _session_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """Leave with the session's own status once everything pytest does at the end is done.

    The suite's process holds Ray's core worker, ONNX Runtime and torch; tearing the
    interpreter down after them crashed once in two fresh-clone runs here (a segmentation
    fault after "355 passed", no Python frame to show), which turned a passing suite into a
    failed `make test`. Nothing is left to run by then, so the process ends without that
    teardown."""
    if _session_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_session_status[-1])


@pytest.fixture(scope="session")
def labelled_clip():
    """20 s of one synthetic scene at 2 frames/s, 64x128, with exact labels: (frames, labels)."""
    import numpy as np

    from ams_ray.data.synthetic import SyntheticVideo

    video = SyntheticVideo(33, duration_s=20, fps=2, height=64, width=128)
    return (np.stack([video.frame(i) for i in range(video.num_frames)]),
            np.stack([video.labels(i) for i in range(video.num_frames)]))


@pytest.fixture(scope="session")
def labelled_window(labelled_clip):
    """The clip as a training window (frames stamped at 2 per second)."""
    import numpy as np

    from ams_ray.learn.window import FrameWindow

    frames, labels = labelled_clip
    window = FrameWindow(250)
    window.add(np.arange(len(frames)) / 2, frames, labels)
    return window


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ams-cache")


@pytest.fixture(scope="session")
def short_video(cache_dir):
    """A 40 s synthetic video with exact labels (two scenes of at least 30 s... or one cut)."""
    from ams_ray.data.datasets import materialize_synthetic

    return materialize_synthetic(seed=7, duration_s=40.0, height=64, width=128, cache_dir=cache_dir, progress=False)


@pytest.fixture(scope="module")
def ray_local():
    """A real single-node Ray cluster on loopback with one *logical* GPU.

    The GPU is a fake only in that no CUDA device backs it (none exists here): Ray packs
    fractional GPU requests on it exactly as on a real one, while training runs on CPU.
    """
    import ray

    from actors.cluster import connect

    shutdown_ray()  # whatever ran before, this module owns its cluster
    connect(None, num_cpus=4, num_gpus=1)
    yield ray
    shutdown_ray()


@pytest.fixture(scope="session")
def device_python(tmp_path_factory) -> Path:
    """The Python of a clean venv holding `pip install .` of this checkout: what a device owner
    installs (no extras). Run it outside the checkout, or the source tree would shadow the install."""
    import subprocess
    import sys

    venv = tmp_path_factory.mktemp("device-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    source = copy_source(tmp_path_factory.mktemp("device-source"))
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(source)], capture_output=True,
                             text=True, timeout=900, cwd=venv)
    assert install.returncode == 0, f"pip install . failed:\n{install.stderr[-3000:]}"
    return python
