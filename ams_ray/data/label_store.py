"""A directory of per-frame label maps: what `extract-labels` writes and the cached teacher reads.

Layout: ``DIR/meta.json`` ({"num_classes", "class_names", "frames"}, plus what made the
labels where known: "label_size" [H, W], "video_size", "video", "teacher") and one 8-bit PNG
per frame, ``DIR/000123.png``, holding class ids. PNG because any tool can open it and it
compresses label maps ~50x; per frame so a stream can read just the frames it samples.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

META = "meta.json"


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize: class ids must never be blended into ids that do not exist."""
    if labels.shape == (height, width):
        return labels
    rows = (np.arange(height) * labels.shape[0] / height).astype(np.int64)
    cols = (np.arange(width) * labels.shape[1] / width).astype(np.int64)
    return labels[rows][:, cols]


class LabelStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        meta_path = self.root / META
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no label directory at {self.root} (missing {META}); create one with "
                "`python -m ams_ray extract-labels --video V --teacher T --out DIR`"
            )
        meta = json.loads(meta_path.read_text())
        self.num_classes: int = int(meta["num_classes"])
        self.class_names: list[str] = list(meta.get("class_names", []))
        self.num_frames: int = int(meta["frames"])
        self.label_size: tuple[int, int] | None = tuple(meta["label_size"]) if "label_size" in meta else None

    @staticmethod
    def create(root: str | Path, num_classes: int, class_names: Sequence[str] = (),
               provenance: dict | None = None) -> "LabelWriter":
        """`provenance`: extra meta.json fields saying how the labels were made."""
        return LabelWriter(Path(root), num_classes, list(class_names), provenance or {})

    def path(self, index: int) -> Path:
        return self.root / f"{index:06d}.png"

    def read(self, index: int) -> np.ndarray:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} has no label in {self.root} ({self.num_frames} frames)")
        return _decoded(self.path(index), self.num_classes, str(self.path(index)))


@dataclass(frozen=True)
class LabelArchive:
    """A label directory as data, its PNGs' bytes: how truth labels reach a process on a node
    that does not have the directory. Reads like a `LabelStore`."""

    name: str
    num_classes: int
    frames: tuple[bytes, ...]

    @classmethod
    def read_directory(cls, root: str | Path) -> "LabelArchive":
        store = LabelStore(root)
        return cls(str(root), store.num_classes, tuple(store.path(i).read_bytes() for i in range(store.num_frames)))

    @classmethod
    def from_labels(cls, name: str, num_classes: int, labels: Iterable[np.ndarray]) -> "LabelArchive":
        """Label maps made in memory, kept as the same PNG bytes a label directory holds."""
        return cls(name, num_classes, tuple(_png(l) for l in labels))

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def read(self, index: int) -> np.ndarray:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} has no label in {self.name} ({self.num_frames} frames)")
        return _decoded(io.BytesIO(self.frames[index]), self.num_classes, f"frame {index} of {self.name}")


def _png(labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(labels.astype(np.uint8), mode="L").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _decoded(png: Path | io.BytesIO, num_classes: int, where: str) -> np.ndarray:
    labels = np.asarray(Image.open(png))
    if labels.size and int(labels.max()) >= num_classes:
        raise ValueError(f"label id {int(labels.max())} in {where} is out of range for {num_classes} classes; "
                         "the labels were made for another class set")
    return labels


class LabelWriter:
    def __init__(self, root: Path, num_classes: int, class_names: list[str], provenance: dict) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.num_classes, self.class_names, self.provenance = root, num_classes, class_names, provenance
        self.count = 0

    def write(self, labels: np.ndarray) -> None:
        if labels.size and int(labels.max()) >= self.num_classes:
            raise ValueError(f"label id {int(labels.max())} out of range for {self.num_classes} classes")
        (self.root / f"{self.count:06d}.png").write_bytes(_png(labels))
        self.count += 1

    def close(self) -> LabelStore:
        """Write meta.json last, so a half-written directory is never mistaken for a whole one."""
        meta = {"num_classes": self.num_classes, "class_names": self.class_names, "frames": self.count,
                **self.provenance}
        (self.root / META).write_text(json.dumps(meta))
        return LabelStore(self.root)
