"""Loading model weights from a local file or torchvision's cache, never from the network.

Deployments often sit behind firewalls; a missing file must say where it was looked for
and how to provide it rather than hang on a download.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from urllib.parse import urlparse

import torch

from ams_ray.models.student_spec import read_weights_file


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    return load_state_dict_bytes(read_weights_file(path), str(path))


def load_state_dict_bytes(data: bytes, source: str) -> dict[str, torch.Tensor]:
    """Read a state dict saved by `torch.save`, also when nested under "state_dict"/"model".

    From bytes, because weights travel to processes on nodes that do not have the file;
    `source` names the file in messages."""
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for bad files
        raise ValueError(f"cannot read weights from {source}: {exc}; expected a file written by torch.save") from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{source} does not hold a state dict of tensors")
    return obj


def torchvision_cache_path(url: str) -> Path:
    """Where torchvision's `load_state_dict_from_url` keeps the file for `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def load_torchvision_weights(weights_enum) -> dict[str, torch.Tensor]:
    """Load a torchvision `Weights` entry from the local cache only."""
    cached = torchvision_cache_path(weights_enum.url)
    if not cached.is_file():
        raise FileNotFoundError(
            f"{weights_enum} is not in torchvision's cache ({cached}); copy the file there from a machine "
            "with internet access, or pass a local weights file instead"
        )
    return load_state_dict_file(cached)
