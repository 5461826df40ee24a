"""Fault injection as a feature: which process to kill when, and what a kill cost (pure).

    kill-trainer:STREAM@S   the trainer of STREAM, S wall seconds after the streams start
    kill-teacher@S          one replica of the teacher deployment
    kill-edge:STREAM@S      the edge process playing STREAM (gone for good: its devices' streams fail;
                            one stream with --devices-per-edge-host 1)

`fault_outcomes` reads the streams' reports afterwards: for each fault, `recovered_s` is
the wall time from the kill to the stream's next applied packet (for the teacher, to the
next chunk any stream got labelled) and `updates_after` the packets that stream applied
after the kill; a killed trainer also reports the packet its checkpoint resumed from (None:
it came back before its first checkpoint and started afresh). The Ray side that carries kills out is `serve/fault_injection.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = {"kill-trainer": True, "kill-edge": True, "kill-teacher": False}  # kind -> takes a :STREAM
# The long-running service's faults (`benchmarks/service_faults.py`), on its processes, not a stream's:
SERVICE_KINDS = {"kill-host": False, "add-host": False, "kill-ingress": False, "restart-directory": False}
_SPEC = re.compile(r"^(?P<kind>[a-z-]+)(?::(?P<stream>[^@]+))?@(?P<at>[0-9.]+)$")


@dataclass(frozen=True)
class Fault:
    kind: str
    at_s: float
    stream: str | None = None

    @classmethod
    def parse(cls, text: str, kinds: dict[str, bool] = KINDS) -> "Fault":
        """`KIND[:STREAM]@S`, with KIND one of `kinds` (KINDS: a fleet run's; SERVICE_KINDS)."""
        match = _SPEC.match(text.strip())
        if not match or match["kind"] not in kinds:
            forms = " or ".join(f"{k}{':STREAM' if streamed else ''}@S" for k, streamed in kinds.items())
            raise ValueError(f"bad fault {text!r}: use {forms}")
        kind, stream = match["kind"], match["stream"]
        if kinds[kind] != (stream is not None):
            raise ValueError(f"bad fault {text!r}: {kind} " + ("takes no stream" if stream else "needs :STREAM"))
        return cls(kind, float(match["at"]), stream)

    def __str__(self) -> str:
        return f"{self.kind}{':' + self.stream if self.stream else ''}@{self.at_s:g}"


def fault_outcomes(fired: list[tuple[Fault, float]], edges: list[dict], trainers: list[dict]) -> list[dict]:
    """`fired`: (fault, wall time it was carried out). Edges report `applied_wall` (wall time
    of every applied packet), trainers `labelled_wall` (of every labelled chunk)."""
    applied = {e["stream_id"]: e.get("applied_wall", []) for e in edges}
    resumed = {t.get("stream_id"): t.get("resumed_from_packet") for t in trainers}
    labelled = sorted(t for trainer in trainers for t in trainer.get("labelled_wall", []))
    outcomes = []
    for fault, wall in fired:
        if fault.kind == "kill-teacher":
            after = [t for t in labelled if t > wall]
            updates = None
        else:
            after = [t for t in applied.get(fault.stream, []) if t > wall]
            updates = len(after)
        outcomes.append({
            "fault": str(fault), "at_s": fault.at_s, "stream": fault.stream,
            "recovered_s": (min(after) - wall) if after else None, "updates_after": updates,
            **({"resumed_from_packet": resumed.get(fault.stream)} if fault.kind == "kill-trainer" else {}),
        })
    return outcomes
