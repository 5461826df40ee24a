"""Teacher backends: anything that turns a batch of RGB frames into label maps.

Specs accepted by `build_teacher`:
  ``oracle``                       exact labels of a synthetic video, regenerated from (seed, frame index)
  ``labels:DIR``                   a label directory (see `label_store`), e.g. from extract-labels
  ``torchvision:NAME[:WEIGHTS]``   deeplabv3_resnet50/101; WEIGHTS is a local file or ``cache``
                                   (torchvision's cache, never downloaded at run time)
  ``MODULE:FACTORY``               your own: FACTORY() returns a callable frames -> labels with a
                                   ``num_classes`` attribute
Each request names its video by a *source key* (`VideoSource.label_key`: a synthetic video's
key, never a path) and a frame index, which let the oracle and label directories look labels
up; models label the pixels and ignore both.
"""

from __future__ import annotations

import importlib
from typing import Callable, Protocol, Sequence

import numpy as np

from ams_ray.datasets import SyntheticSpec
from ams_ray.label_store import LabelStore
from ams_ray.synthetic import NUM_CLASSES

TORCHVISION_TEACHERS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large")


class Teacher(Protocol):
    num_classes: int

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray: ...


def _resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    if labels.shape == (height, width):
        return labels
    rows = (np.arange(height) * labels.shape[0] / height).astype(np.int64)
    cols = (np.arange(width) * labels.shape[1] / width).astype(np.int64)
    return labels[rows][:, cols]


class CachedLabelTeacher:
    """Reads precomputed labels (the original's extract_labels workflow, or synthetic truth)."""

    def __init__(self, store: LabelStore) -> None:
        self.store = store
        self.num_classes = store.num_classes

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
        h, w = frames.shape[1:3]
        return np.stack([_resize_labels(self.store.read(int(i)), h, w) for i in frame_indices])


class SyntheticOracle:
    """Exact labels of a synthetic video, re-rendered from its spec wherever the teacher runs."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.video = spec.video()
        self.num_classes = NUM_CLASSES

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
        h, w = frames.shape[1:3]
        return np.stack([_resize_labels(self.video.labels(int(i)), h, w) for i in frame_indices])


class TorchvisionTeacher:
    """A torchvision segmentation model run at the frames' resolution."""

    def __init__(self, name: str, weights: str | None, device: str = "cpu") -> None:
        import torch
        from torchvision.models import segmentation

        from ams_ray.students import load_matching
        from ams_ray.weights import load_state_dict_file, load_torchvision_weights

        if name not in TORCHVISION_TEACHERS:
            raise ValueError(f"unknown torchvision teacher {name!r}; choose one of {', '.join(TORCHVISION_TEACHERS)}")
        if weights == "cache":
            from torchvision.models import get_model_weights

            enum = get_model_weights(name).DEFAULT
            state, source = load_torchvision_weights(enum), str(enum)
        elif weights:
            state, source = load_state_dict_file(weights), weights
        else:
            raise ValueError(f"teacher torchvision:{name} needs weights: torchvision:{name}:PATH or torchvision:{name}:cache")
        num_classes = int(state["classifier.4.weight"].shape[0]) if "classifier.4.weight" in state else 21
        self.model = getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=num_classes,
                                                 aux_loss="aux_classifier.0.weight" in state)
        load_matching(self.model, state, source)
        self.model.eval().to(device)
        self.num_classes, self.device, self._torch = num_classes, device, torch
        self._mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float()
            out = self.model((x - self._mean) / self._std)["out"]
            return out.argmax(1).to(torch.uint8).cpu().numpy()


class CallableTeacher:
    """Adapts a user object (callable on frames) to the Teacher interface."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], num_classes: int, source: str) -> None:
        self.fn, self.num_classes, self.source = fn, num_classes, source

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
        return np.asarray(self.fn(frames))


def _import_factory(spec: str) -> CallableTeacher:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"unknown teacher {spec!r}: {exc}. Use oracle, labels:DIR, torchvision:NAME:WEIGHTS or MODULE:FACTORY"
        ) from exc
    obj = factory()
    fn = obj.label if hasattr(obj, "label") else obj
    num_classes = getattr(obj, "num_classes", None)
    if not callable(fn) or not isinstance(num_classes, int):
        raise ValueError(f"teacher factory {spec} must return a callable with an int `num_classes` attribute")
    return CallableTeacher(fn, num_classes, spec)


def build_teacher(spec: str, source_key: str | None = None, device: str = "cpu") -> Teacher:
    """`source_key` names the video for the oracle (see `VideoSource.label_key`)."""
    if spec == "oracle":
        synthetic = SyntheticSpec.from_key(source_key)
        if synthetic is None:
            raise ValueError(
                "teacher 'oracle' needs exact labels, which only synthetic videos carry; for a real "
                "video use --teacher labels:DIR or torchvision:NAME:WEIGHTS"
            )
        return SyntheticOracle(synthetic)
    kind, _, rest = spec.partition(":")
    if kind == "labels":
        return CachedLabelTeacher(LabelStore(rest))
    if kind == "torchvision":
        name, _, weights = rest.partition(":")
        return TorchvisionTeacher(name, weights or None, device)
    if ":" in spec:
        return _import_factory(spec)
    raise ValueError(f"unknown teacher {spec!r}; use oracle, labels:DIR, torchvision:NAME:WEIGHTS or MODULE:FACTORY")


def checked_labels(teacher: Teacher, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
    """Call a teacher and refuse output that would silently corrupt training."""
    labels = teacher.label(frames, frame_indices)
    expected = frames.shape[:3]
    if labels.shape != expected:
        raise ValueError(f"teacher returned labels shaped {labels.shape}, expected {expected} (one map per frame)")
    if labels.size and (labels.min() < 0 or labels.max() >= teacher.num_classes):
        raise ValueError(
            f"teacher returned label id {int(labels.max())} outside 0..{teacher.num_classes - 1}; "
            "its class set does not match its num_classes"
        )
    return labels.astype(np.uint8)


class TeacherPool:
    """One teacher spec serving many videos, labelling a mixed batch of frames at once.

    Cached backends (oracle, labels:DIR) are per video, so they are built per source key
    on first use; model backends are shared, and a mixed batch becomes one forward pass.
    This is what a shared, batched teacher deployment holds.
    """

    def __init__(self, spec: str, device: str = "cpu") -> None:
        self.spec, self.device = spec, device
        self._per_video = spec == "oracle" or spec.startswith("labels:")
        self._teachers: dict[str | None, Teacher] = {}

    def teacher_for(self, source_key: str | None) -> Teacher:
        key = source_key if self._per_video else None
        if key not in self._teachers:
            self._teachers[key] = build_teacher(self.spec, source_key, self.device)
        return self._teachers[key]

    def label_many(self, requests: Sequence[tuple[str | None, int, np.ndarray]]) -> list[np.ndarray]:
        """[(source_key, frame_index, frame)] -> one label map per request, in order."""
        groups: dict[int, list[int]] = {}
        teachers: dict[int, Teacher] = {}
        for position, (video, _, _) in enumerate(requests):
            teacher = self.teacher_for(video)
            groups.setdefault(id(teacher), []).append(position)
            teachers[id(teacher)] = teacher
        out: list[np.ndarray | None] = [None] * len(requests)
        for key, positions in groups.items():
            shapes = {requests[p][2].shape for p in positions}
            for shape in shapes:  # frames of different sizes cannot share a tensor
                same = [p for p in positions if requests[p][2].shape == shape]
                frames = np.stack([requests[p][2] for p in same])
                labels = checked_labels(teachers[key], frames, [requests[p][1] for p in same])
                for p, l in zip(same, labels):
                    out[p] = l
        return out  # type: ignore[return-value]
