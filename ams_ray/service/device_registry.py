"""Which devices may connect, each with its own bearer token, kept where the service's state is.

A device id is also its stream id: a token grants that one stream and nothing else. Tokens
are 256 random bits shown once, at `add`; the registry keeps only their SHA-256. A fast hash
is enough because the secret has full entropy (a slow password hash protects guessable
secrets, and would cost every request milliseconds); and since the lookup is keyed by the
digest of what the caller sent, its timing says nothing about any stored token.

The registry is one JSON document in the same store as the stream checkpoints (a directory
or any fsspec URL), so `python -m serve.devices` and the ingress, on whatever nodes they run,
read and write the same bytes; the ingress re-reads it every few seconds, so a revoked
token stops working without a restart.

Changes are read-modify-write of that one document, and operators script them (`add` in a
loop, from several shells), so two writers must not lose each other's device. On a local or
mounted filesystem a change holds an exclusive `flock` on ``devices.json.lock`` from its
read to its atomic rename. An object store has no lock: there the document carries a
generation, and a change re-reads it just before writing and starts over if another writer
got in between, which leaves a window of one round-trip (a store with conditional PUTs
would close it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ams_ray.service.checkpoint_store import write_atomically

FILE_NAME = "devices.json"
# A fixed prefix names the secret in logs and scanners, and keeps it from starting with "-",
# which a command line would take for an option (url-safe base64 starts with "-" 1 time in 64).
TOKEN_PREFIX = "ams_"
CHANGE_ATTEMPTS = 20  # an object-store change that keeps meeting other writers gives up after these
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class RegisteredDevice:
    device_id: str
    token_sha256: str
    created: float
    revoked: bool = False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DeviceRegistry:
    def __init__(self, store_url: str | Path) -> None:
        self.url = f"{str(store_url).rstrip('/')}/{FILE_NAME}"
        self.fs, self.path = fsspec.core.url_to_fs(self.url)
        self.local = isinstance(self.fs, LocalFileSystem)

    def devices(self) -> dict[str, RegisteredDevice]:
        return self._read()[1]

    def add(self, device_id: str) -> str:
        """Register a device; returns its token, which is never stored or shown again."""
        if not DEVICE_ID.match(device_id):
            raise RegistryError(f"device id {device_id!r} must be 1-64 letters, digits, '_', '.' or '-', "
                                "starting with a letter or digit (it names the stream and its checkpoint)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)

        def change(devices: dict[str, RegisteredDevice]) -> None:
            if device_id in devices and not devices[device_id].revoked:
                raise RegistryError(f"device {device_id} is already registered; revoke it first to issue a new token")
            devices[device_id] = RegisteredDevice(device_id, token_digest(token), time.time())

        self._change(change)
        return token

    def revoke(self, device_id: str) -> None:
        def change(devices: dict[str, RegisteredDevice]) -> None:
            if device_id not in devices:
                raise RegistryError(f"no device {device_id} in {self.url}; `list` shows the registered ones")
            devices[device_id] = RegisteredDevice(**{**asdict(devices[device_id]), "revoked": True})

        self._change(change)

    def _read(self) -> tuple[int, dict[str, RegisteredDevice]]:
        """(generation, devices) as stored now."""
        try:
            data = self.fs.cat_file(self.path)  # one request, also where a missing file is the answer
        except FileNotFoundError:
            return 0, {}
        try:
            document = json.loads(data)
            return int(document.get("generation", 0)), {d["device_id"]: RegisteredDevice(**d)
                                                        for d in document["devices"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"device registry {self.url} is unreadable ({exc}); restore it from a backup "
                                "or delete it and add the devices again") from exc

    def _change(self, change: Callable[[dict[str, RegisteredDevice]], None]) -> None:
        """Apply `change` to the stored devices without losing a concurrent writer's change."""
        if self.local:
            with self._locked():
                generation, devices = self._read()
                change(devices)
                self._write(generation + 1, devices)
            return
        for _ in range(CHANGE_ATTEMPTS):
            generation, devices = self._read()
            change(devices)
            if self._read()[0] == generation:
                self._write(generation + 1, devices)
                return
            time.sleep(secrets.randbelow(100) / 1000)
        raise RegistryError(f"device registry {self.url} kept changing under this change; try again")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = Path(f"{self.path}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, generation: int, devices: dict[str, RegisteredDevice]) -> None:
        data = json.dumps({"generation": generation, "devices": [asdict(d) for d in devices.values()]},
                          indent=1).encode()
        if self.local:
            write_atomically(Path(self.path), data)
        else:
            self.fs.pipe_file(self.path, data)


class TokenCheck:
    """The ingress's view of the registry: token -> device id. Re-read every `refresh_s` (a
    revocation takes that long to bite), and on an unknown token at most every `miss_refresh_s`
    (a device added a moment ago is admitted at once; a flood of bad tokens costs few reads)."""

    def __init__(self, registry: DeviceRegistry, refresh_s: float = 2.0, miss_refresh_s: float = 0.25) -> None:
        self.registry, self.refresh_s, self.miss_refresh_s = registry, refresh_s, miss_refresh_s
        self._by_digest: dict[str, str] = {}
        self._read_at = float("-inf")

    def device_for(self, token: str) -> str | None:
        """The device the token belongs to, or None for an unknown or revoked token (reading
        the store when due: an event loop calls `reload` off the loop, then `known`)."""
        if self.needs_reload(token):
            self.reload()
        return self.known(token)

    def needs_reload(self, token: str) -> bool:
        age = time.monotonic() - self._read_at
        return age >= self.refresh_s or (token_digest(token) not in self._by_digest and age >= self.miss_refresh_s)

    def reload(self) -> None:
        self._by_digest = {d.token_sha256: d.device_id for d in self.registry.devices().values() if not d.revoked}
        self._read_at = time.monotonic()

    def known(self, token: str) -> str | None:
        """The answer from the last read, without reading."""
        return self._by_digest.get(token_digest(token))
