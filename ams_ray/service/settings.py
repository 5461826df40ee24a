"""What a long-running ams-ray service is: its state, its models, its limits (pure: no Ray).

One place for the defaults that `python -m serve.app`, `serve run serve/service.yaml` and
the tests share. Everything the service keeps lives under `state_url`: the device registry
(`devices.json`) and each stream's checkpoint (`streams/<device id>/`), so a restarted
service, on any node that reaches that store, carries on where the last one stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ams_ray.data.datasets import default_cache_dir
from ams_ray.service.host_pool import ScaleRange
from ams_ray.teach.teachers import looks_up_labels


def default_state_url() -> str:
    return str(default_cache_dir() / "service")


class ServiceSettings(BaseModel):
    state_url: str = Field(default_factory=default_state_url, description="directory or fsspec URL of the "
                           "device registry and the stream checkpoints")
    host: str = Field("127.0.0.1", description="address the HTTP ingress listens on; 0.0.0.0 exposes it")
    port: int = Field(8000, ge=1, le=65535)
    teacher: str = Field("network", description="teacher spec; it labels the pixels devices upload")
    student: str = "tiny"
    strategy: str = "ams_gg10"
    profile: str = "cpu"
    hosts: ScaleRange = Field(ScaleRange(2, 2), description="trainer host processes, N or MIN..MAX (the pool grows past "
                       "streams_per_host open streams per host and shrinks when they close)")
    streams_per_host: int = Field(16, ge=1, description="open streams per host above which the pool grows")
    cpus_per_trainer: float = Field(0.4, gt=0)
    scheduler: Literal["fifo", "round_robin", "gain", "concurrent"] = Field(
        "fifo", description="which due round trains first when the hosts cannot train them all "
                            "(ams_ray.service.round_policy)")
    trainer_gpus: float = Field(0.0, ge=0, description="GPU share of each trainer host (it trains on CUDA when > 0)")
    ingress_replicas: ScaleRange = Field(ScaleRange(1, 1), description="HTTP ingress replicas, N or MIN..MAX (Serve autoscaling)")
    teacher_replicas: ScaleRange = Field(ScaleRange(1, 1), description="teacher replicas, N or MIN..MAX (Serve autoscaling)")
    teacher_cpus: float = Field(0.5, gt=0)
    teacher_gpus: float = Field(0.0, ge=0, description="GPU share of each teacher replica (it labels on CUDA when > 0)")
    shared_state: bool = Field(False, description="the operator vouches that a local state directory is mounted on "
                               "every node (NFS, a shared volume); otherwise a multi-node cluster refuses it")
    teacher_batch: int = Field(8, ge=1)
    idle_retire_s: float = Field(300.0, gt=0, description="a stream no device touched this long is closed; "
                                 "its checkpoint stays and a returning device resumes from it")
    long_poll_s: float = Field(20.0, gt=0, le=60, description="longest a packet request waits for a packet")
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    max_chunk_frames: int = Field(64, ge=1)
    requests_per_s: float = Field(5.0, gt=0, description="each device's sustained request budget")
    request_burst: int = Field(20, ge=1)
    call_timeout_s: float = Field(120.0, gt=0)

    @field_validator("teacher")
    @classmethod
    def _labels_pixels(cls, spec: str) -> str:
        if looks_up_labels(spec):
            raise ValueError(f"teacher {spec!r} looks labels up by video and frame, which a device in the field "
                             "does not send; the service needs a teacher that labels pixels: network, "
                             "torchvision:NAME:WEIGHTS or MODULE:FACTORY")
        return spec

    @field_validator("hosts", "ingress_replicas", "teacher_replicas", mode="before")
    @classmethod
    def _is_a_scale(cls, value: ScaleRange | str | int, info) -> ScaleRange:
        """`3` or `"2..8"` (flags, YAML) -> ScaleRange, refused with the syntax otherwise."""
        return value if isinstance(value, ScaleRange) else ScaleRange.parse(value, info.field_name)

    @property
    def checkpoint_url(self) -> str:
        return f"{self.state_url.rstrip('/')}/streams"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def check_state_reachable(state_url: str, nodes: int, shared: bool) -> None:
    """Refuse a state directory that other nodes cannot see: a host restarted on another node
    would find no log there and silently send its device back to the pretrained model."""
    if nodes > 1 and not shared and (state_url.startswith("file://") or "://" not in state_url):
        raise ValueError(f"the state directory {state_url} is local to this node, and this Ray cluster has {nodes} "
                         "nodes: a trainer host on another node would not find the streams' logs. Pass an fsspec URL "
                         "every node reaches (--state-dir s3://bucket/ams with s3fs installed, gs://..., or a path "
                         "on a shared mount with --shared-state)")


def expand_local(path_or_url: str) -> str:
    """`~` in a local path is the operator's home; a URL is left alone."""
    return path_or_url if "://" in path_or_url else str(Path(path_or_url).expanduser())
