"""Teacher backends: anything that turns a batch of RGB frames into label maps.

Specs accepted by `build_teacher`:
  ``oracle``                       exact labels of a synthetic video, regenerated from (seed, frame index)
  ``network[:WEIGHTS]``            the embedded teacher network (`teacher_network.py`), from its pixels
  ``labels:DIR``                   a label directory (see `label_store`), e.g. from extract-labels
  ``torchvision:NAME[:WEIGHTS]``   deeplabv3_resnet50/101; WEIGHTS is a local file or ``cache``
                                   (torchvision's cache, never downloaded at run time)
  ``MODULE:FACTORY``               your own plugin: FACTORY() returns an object that follows the
                                   `Teacher` protocol below (see README, "Your own video and teacher")
Files named by a spec are read where it is given (`teacher_spec.TeacherSpec`) and travel as
bytes. Each request names its video by a *source key* (`VideoSource.label_key`: a synthetic video's
key, never a path) and a frame index, which let the oracle and label directories look labels
up; models label the pixels and ignore both.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Sequence

import numpy as np

from ams_ray.data.datasets import SyntheticSpec
from ams_ray.data.label_lookup import CachedLabelTeacher, SyntheticOracle, Teacher
from ams_ray.teach.teacher_spec import TORCHVISION_CACHE, TeacherSpec, read_spec

TORCHVISION_TEACHERS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large")


class TeacherPluginError(ValueError):
    """A `MODULE:FACTORY` teacher that cannot be loaded or misbehaved; the message names it."""


class TorchvisionTeacher:
    """A torchvision segmentation model run at the frames' resolution (fp16 autocast on a GPU)."""

    def __init__(self, name: str, weights: bytes | None, from_cache: bool, device: str = "cpu",
                 source: str = "") -> None:
        """`weights`: a state dict file's bytes; or `from_cache`: torchvision's cache on this node."""
        import torch
        from torchvision.models import segmentation

        from ams_ray.models.students import load_matching
        from ams_ray.models.weights import load_state_dict_bytes, load_torchvision_weights

        if name not in TORCHVISION_TEACHERS:
            raise ValueError(f"unknown torchvision teacher {name!r}; choose one of {', '.join(TORCHVISION_TEACHERS)}")
        if from_cache:
            from torchvision.models import get_model_weights

            enum = get_model_weights(name).DEFAULT
            state, source = load_torchvision_weights(enum), str(enum)
        elif weights is not None:
            state = load_state_dict_bytes(weights, source)
        else:
            raise ValueError(f"teacher torchvision:{name} needs weights: torchvision:{name}:PATH or "
                             f"torchvision:{name}:{TORCHVISION_CACHE}")
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
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.device.startswith("cuda")):
            x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float()
            out = self.model((x - self._mean) / self._std)["out"]
            return out.argmax(1).to(torch.uint8).cpu().numpy()


class PluginTeacher:
    """A user's `MODULE:FACTORY` teacher, with every failure turned into a message naming it.

    Plugins run user code on every batch; a raw traceback from deep inside the server would
    not say whose code failed or what the protocol expects.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.plugin = _load_plugin(spec)
        self.num_classes: int = self.plugin.num_classes

    def label(self, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
        try:
            labels = self.plugin.label(frames, list(frame_indices))
        except Exception as exc:  # noqa: BLE001 - any failure of user code is reported as the plugin's
            raise TeacherPluginError(
                f"teacher plugin {self.spec} failed on a batch of {len(frames)} frames: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return np.asarray(labels)


def _load_plugin(spec: str) -> Teacher:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TeacherPluginError(
            f"teacher plugin {spec}: cannot import module {module_name!r} ({exc}); it must be importable, "
            f"e.g. {module_name.replace('.', '/')}.py in the current directory or a folder on PYTHONPATH"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise TeacherPluginError(f"teacher plugin {spec}: module {module_name!r} has no function {attr!r}")
    try:
        plugin = factory()
    except Exception as exc:  # noqa: BLE001 - user code
        raise TeacherPluginError(f"teacher plugin {spec}: {attr}() raised {type(exc).__name__}: {exc}") from exc
    _check_protocol(spec, plugin)
    return plugin


def _check_protocol(spec: str, plugin: object) -> None:
    """Refuse a plugin whose shape cannot work before it labels anything."""
    expected = "an object with `num_classes: int` and `label(frames, frame_indices)`"
    num_classes = getattr(plugin, "num_classes", None)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or not 2 <= num_classes <= 256:
        raise TeacherPluginError(
            f"teacher plugin {spec}: `num_classes` is {num_classes!r}; the factory must return {expected} "
            "with 2 to 256 classes"
        )
    label = getattr(plugin, "label", None)
    if not callable(label):
        raise TeacherPluginError(f"teacher plugin {spec}: no `label` method; the factory must return {expected}")
    try:
        inspect.signature(label).bind(np.zeros((1, 1, 1, 3), np.uint8), [0])
    except TypeError as exc:
        raise TeacherPluginError(
            f"teacher plugin {spec}: `label` cannot be called as label(frames, frame_indices) ({exc})"
        ) from exc
    except ValueError:  # no signature to inspect (a builtin): trust it
        pass


def looks_up_labels(spec: str) -> bool:
    """Whether a teacher spec reads labels by video and frame (oracle, labels:DIR) instead of
    running on pixels: cheap to ask again, and useless without the video's identity."""
    return spec == "oracle" or spec.startswith("labels:")


def build_teacher(spec: str | TeacherSpec, source_key: str | None = None, device: str = "cpu") -> Teacher:
    """`spec` as text is read here; a `TeacherSpec` was read where it was given, and its
    files came along as bytes. `source_key` names the video for the oracle (see
    `VideoSource.label_key`)."""
    spec = read_spec(spec)
    if spec.text == "oracle":
        synthetic = SyntheticSpec.from_key(source_key)
        if synthetic is None:
            raise ValueError(
                "teacher 'oracle' needs exact labels, which only synthetic videos carry; for a real "
                "video use --teacher labels:DIR or torchvision:NAME:WEIGHTS"
            )
        return SyntheticOracle(synthetic)
    kind, _, rest = spec.text.partition(":")
    if kind == "labels":
        return CachedLabelTeacher(spec.labels)
    if kind == "network":
        from ams_ray.models.teacher_network import NetworkTeacher

        return NetworkTeacher(spec.weights, device, spec.source)
    if kind == "torchvision":
        name, _, weights = rest.partition(":")
        return TorchvisionTeacher(name, spec.weights, weights == TORCHVISION_CACHE, device, spec.source)
    if ":" in spec.text:
        return PluginTeacher(spec.text)
    raise ValueError(f"unknown teacher {spec.text!r}; use network, oracle, labels:DIR, torchvision:NAME:WEIGHTS or "
                     "MODULE:FACTORY")


def checked_labels(teacher: Teacher, frames: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
    """Call a teacher and refuse output that would silently corrupt training."""
    labels = np.asarray(teacher.label(frames, frame_indices))
    name = f"teacher plugin {teacher.spec}" if isinstance(teacher, PluginTeacher) else "teacher"
    expected = frames.shape[:3]
    if labels.shape != expected:
        raise ValueError(f"{name} returned labels shaped {labels.shape}, expected {expected} (one map per frame)")
    if labels.size and (labels.min() < 0 or labels.max() >= teacher.num_classes):
        raise ValueError(
            f"{name} returned label id {int(labels.max())} outside 0..{teacher.num_classes - 1}; "
            "its class set does not match its num_classes"
        )
    return labels.astype(np.uint8)


class TeacherPool:
    """One teacher spec serving many videos, labelling a mixed batch of frames at once.

    Cached backends (oracle, labels:DIR) are per video, so they are built per source key
    on first use; model backends are shared, and a mixed batch becomes one forward pass.
    This is what a shared, batched teacher deployment holds.
    """

    def __init__(self, spec: str | TeacherSpec, device: str = "cpu") -> None:
        self.spec = read_spec(spec)
        self.device = device
        self.cached = looks_up_labels(self.spec.text)  # per video, no model
        self._teachers: dict[str | None, Teacher] = {}

    def teacher_for(self, source_key: str | None) -> Teacher:
        key = source_key if self.cached else None
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
