"""A copy of the checkout's packages, for tests that install or lint it apart from the checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ams_ray", "actors", "serve", "monitoring")


def copy_source(to: Path, with_assets: bool = True) -> Path:
    """The packages, `pyproject.toml` and `README.md` under `to`; without the model weights
    where only imports matter. pip builds in the tree it is given, so a copy keeps the checkout clean."""
    ignored = ("__pycache__",) if with_assets else ("__pycache__", "assets")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, to / package, ignore=shutil.ignore_patterns(*ignored))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, to)
    return to
