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
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ams_ray.service.checkpoint_store import write_atomically

FILE_NAME = "devices.json"
# A fixed prefix names the secret in logs and scanners, and keeps it from starting with "-",
# which a command line would take for an option (url-safe base64 starts with "-" 1 time in 64).
TOKEN_PREFIX = "ams_"
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

    def devices(self) -> dict[str, RegisteredDevice]:
        if not self.fs.exists(self.path):
            return {}
        try:
            document = json.loads(self.fs.cat_file(self.path))
            return {d["device_id"]: RegisteredDevice(**d) for d in document["devices"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"device registry {self.url} is unreadable ({exc}); restore it from a backup "
                                "or delete it and add the devices again") from exc

    def add(self, device_id: str) -> str:
        """Register a device; returns its token, which is never stored or shown again."""
        if not DEVICE_ID.match(device_id):
            raise RegistryError(f"device id {device_id!r} must be 1-64 letters, digits, '_', '.' or '-', "
                                "starting with a letter or digit (it names the stream and its checkpoint)")
        devices = self.devices()
        if device_id in devices and not devices[device_id].revoked:
            raise RegistryError(f"device {device_id} is already registered; revoke it first to issue a new token")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        devices[device_id] = RegisteredDevice(device_id, token_digest(token), time.time())
        self._write(devices)
        return token

    def revoke(self, device_id: str) -> None:
        devices = self.devices()
        if device_id not in devices:
            raise RegistryError(f"no device {device_id} in {self.url}; `list` shows the registered ones")
        devices[device_id] = RegisteredDevice(**{**asdict(devices[device_id]), "revoked": True})
        self._write(devices)

    def _write(self, devices: dict[str, RegisteredDevice]) -> None:
        data = json.dumps({"devices": [asdict(d) for d in devices.values()]}, indent=1).encode()
        if isinstance(self.fs, LocalFileSystem):
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
        """The device the token belongs to, or None for an unknown or revoked token."""
        digest = token_digest(token)
        age = time.monotonic() - self._read_at
        if age >= self.refresh_s or (digest not in self._by_digest and age >= self.miss_refresh_s):
            self._by_digest = {d.token_sha256: d.device_id for d in self.registry.devices().values() if not d.revoked}
            self._read_at = time.monotonic()
        return self._by_digest.get(digest)
