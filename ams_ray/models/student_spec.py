"""Which student a stream starts from, as data that can travel to another node.

A spec is `NAME` (plain `tiny`: the embedded weights), `NAME:WEIGHTS_PATH` or `NAME:scratch`.
A weights file is read where the spec is given and travels as bytes, so trainer processes on
nodes that do not have the file build the same student. No torch here: the fleet's driver
resolves specs without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STUDENT_NAMES = ("tiny", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large")
SCRATCH = "scratch"


@dataclass(frozen=True)
class StudentSpec:
    name: str
    weights: bytes | None = None  # None: the embedded weights (plain tiny), or random with `scratch`
    scratch: bool = False
    source: str = ""  # the file the weights came from, for messages

    @classmethod
    def read(cls, spec: str) -> "StudentSpec":
        name, _, weights = spec.partition(":")
        if name not in STUDENT_NAMES:
            raise ValueError(f"unknown student {name!r}; choose one of {', '.join(STUDENT_NAMES)} "
                             "(as NAME:WEIGHTS.pth, NAME:scratch, or plain tiny)")
        if weights == SCRATCH:
            return cls(name, scratch=True)
        if weights:
            return cls(name, read_weights_file(weights), source=weights)
        return cls(name)


def read_weights_file(path: str | Path) -> bytes:
    """A weights file's bytes, read where a spec names it, or an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return path.read_bytes()
