"""Where streams' durable logs live between processes: a directory, or any fsspec URL.

Every node must reach the store, so on a cluster it is shared storage (``s3://bucket/ams``
with `s3fs` installed, ``gs://...``, an NFS mount), the convention Ray Train follows with
`storage_path`. A plain path is a local directory: fine on one machine, and on a cluster
only when every node mounts it.

The store knows objects, not logs: each stream has a folder of named objects
(`ams_ray.service.stream_log` decides what they hold). Object stores have no append and
replace an object in one PUT; on a local or mounted filesystem a write goes to a temporary
file that is fsync'd and renamed over the old one. Either way a reader sees the old bytes
or the new, never half of each.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem


class CheckpointError(OSError):
    """The store cannot be read or written; the message names the store and the fix."""


class CheckpointStore:
    def __init__(self, url: str | Path) -> None:
        self.url = str(url)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise CheckpointError(
                f"cannot open checkpoint store {self.url!r} ({exc}); install the fsspec backend for its "
                "scheme (s3fs for s3://, gcsfs for gs://) or pass a directory"
            ) from exc
        self.local = isinstance(self.fs, LocalFileSystem)

    def _folder(self, stream_id: str) -> str:
        if not stream_id or "/" in stream_id or stream_id.startswith("."):
            raise ValueError(f"stream id {stream_id!r} cannot name a checkpoint")
        return f"{self.root.rstrip('/')}/{stream_id}"

    def put(self, stream_id: str, name: str, data: bytes) -> None:
        path = f"{self._folder(stream_id)}/{name}"
        try:
            if self.local:
                write_atomically(Path(path), data)
            else:
                self.fs.pipe_file(path, data)
        except OSError as exc:
            raise CheckpointError(
                f"cannot write the checkpoint of {stream_id} to {self.url} ({exc}); make the store writable "
                "or pass another --checkpoint-store"
            ) from exc

    def get(self, stream_id: str, name: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        path = f"{self._folder(stream_id)}/{name}"
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read the checkpoint of {stream_id} from {self.url} ({exc})") from exc

    def listing(self, stream_id: str) -> dict[str, int]:
        """The stream's objects by name, with their sizes in bytes (none: an empty dict)."""
        folder = self._folder(stream_id)
        try:
            if not self.fs.exists(folder):
                return {}
            entries = self.fs.ls(folder, detail=True)
        except OSError as exc:
            raise CheckpointError(f"cannot list the checkpoint of {stream_id} in {self.url} ({exc})") from exc
        return {e["name"].rstrip("/").rsplit("/", 1)[-1]: int(e.get("size") or 0) for e in entries
                if e.get("type") == "file" and not e["name"].rsplit("/", 1)[-1].startswith(".")}

    def remove(self, stream_id: str, names: list[str]) -> None:
        folder = self._folder(stream_id)
        for name in names:
            try:
                self.fs.rm_file(f"{folder}/{name}")
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise CheckpointError(f"cannot remove {name} of {stream_id} from {self.url} ({exc})") from exc


def write_atomically(path: Path, data: bytes) -> None:
    """Old bytes or new, never half of each: a temporary file, fsync'd, renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
