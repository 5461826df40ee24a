"""Export a torch student to the graph the edge runs, weights kept as graph inputs.

Three exporter behaviours would otherwise break patching by name, each handled here:
- eval-mode export folds BatchNorm into the preceding convolution (renaming and merging
  weights), so we export with `TrainingMode.PRESERVE` on a model already in eval mode;
- in eval mode the exporter also merges initializers with *equal values* (freshly built
  BatchNorms are all ones and zeros), so the top-level module's `training` flag alone is
  set during export, which makes the exporter deduplicate by storage instead;
- `export_params=False` turns every weight and buffer into a named graph input.
"""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager

import numpy as np
import torch

from ams_ray.device.runtime import FRAMES_INPUT, DeviceModelBundle
from ams_ray.models.students import StudentNet


@contextmanager
def _export_mode(model: StudentNet):
    was_training = [m.training for m in model.modules()]
    model.eval()
    model.emit_labels, model.training = True, True  # top level only: see module docstring
    try:
        yield
    finally:
        model.emit_labels = False
        for module, flag in zip(model.modules(), was_training):
            module.training = flag


def export_edge_bundle(model: StudentNet, height: int, width: int, trainable: list[str]) -> DeviceModelBundle:
    device = next(model.parameters()).device
    example = torch.zeros(1, height, width, 3, dtype=torch.uint8, device=device)
    buffer = io.BytesIO()
    with _export_mode(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deliberate: see above
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=[FRAMES_INPUT],
            output_names=["labels"],
            dynamic_axes={FRAMES_INPUT: {0: "batch"}, "labels": {0: "batch"}},
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
            export_params=False,
        )
    state = {
        name: tensor.detach().cpu().numpy().astype(np.float32, copy=True)  # the edge runs on CPU
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point()
    }
    return DeviceModelBundle(buffer.getvalue(), state, tuple(trainable), model.num_classes)
