"""Which teacher labels, as data that can travel to another node.

A spec names files (`network:WEIGHTS`, `torchvision:NAME:WEIGHTS`, `labels:DIR`) that exist
where it is given, not where the teacher runs: a Serve replica or a comparison worker may sit
on a node without them. `TeacherSpec.read` reads them there and carries their bytes; the
teacher is then built from the bytes (`teachers.build_teacher`). No torch here, so drivers
resolve specs without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ams_ray.data.label_store import LabelArchive
from ams_ray.models.student_spec import read_weights_file

TORCHVISION_CACHE = "cache"  # torchvision's own cache on the node that runs the teacher, never a download


@dataclass(frozen=True)
class TeacherSpec:
    text: str  # the spec as the user wrote it, for reports and messages
    weights: bytes | None = None  # the file of network:WEIGHTS or torchvision:NAME:WEIGHTS
    labels: LabelArchive | None = None  # the directory of labels:DIR

    @classmethod
    def read(cls, text: str) -> "TeacherSpec":
        kind, _, rest = text.partition(":")
        if kind == "network" and rest:
            return cls(text, weights=read_weights_file(rest))
        if kind == "torchvision":
            _, _, weights = rest.partition(":")
            return cls(text, weights=read_weights_file(weights) if weights and weights != TORCHVISION_CACHE else None)
        if kind == "labels":
            return cls(text, labels=LabelArchive.read_directory(rest))
        return cls(text)

    @property
    def source(self) -> str:
        """The file the weights came from (the part after the last colon), for messages."""
        return self.text.rsplit(":", 1)[-1]


def read_spec(spec: "str | TeacherSpec") -> TeacherSpec:
    """A spec as given: text is read here, a `TeacherSpec` was read where it was given."""
    return spec if isinstance(spec, TeacherSpec) else TeacherSpec.read(spec)

