"""Where stream states live between processes: a directory, or any fsspec URL.

Every node must reach the store, so on a cluster it is shared storage (``s3://bucket/ams``
with `s3fs` installed, ``gs://...``, an NFS mount), the convention Ray Train follows with
`storage_path`. A plain path is a local directory: fine on one machine, and on a cluster
only when every node mounts it.

Writes are atomic: on a local or mounted filesystem the bytes go to a temporary file that
is fsync'd and renamed over the old checkpoint, so a crash leaves the old one or the new
one, never half of each; object stores replace an object in one PUT.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

FILE_NAME = "state.ams"


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

    def _path(self, stream_id: str) -> str:
        if not stream_id or "/" in stream_id or stream_id.startswith("."):
            raise ValueError(f"stream id {stream_id!r} cannot name a checkpoint")
        return f"{self.root.rstrip('/')}/{stream_id}/{FILE_NAME}"

    def save(self, stream_id: str, data: bytes) -> None:
        path = self._path(stream_id)
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

    def load(self, stream_id: str) -> bytes | None:
        """The stream's last checkpoint, or None when it has none yet."""
        path = self._path(stream_id)
        try:
            if not self.fs.exists(path):
                return None
            return self.fs.cat_file(path)
        except OSError as exc:
            raise CheckpointError(f"cannot read the checkpoint of {stream_id} from {self.url} ({exc})") from exc

    def delete(self, stream_id: str) -> None:
        path = self._path(stream_id)
        if self.fs.exists(path):
            self.fs.rm_file(path)


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
