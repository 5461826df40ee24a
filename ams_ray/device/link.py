"""A device's HTTP connection to the service: the `/v1` calls, retries, and what they cost.

Retries follow what a camera in the field needs: a server that restarts or is overloaded
(a refused connection, a timeout, 5xx, 429) is waited for with capped exponential backoff
and jitter, honouring `Retry-After`, up to `give_up_after_s`; a refusal that no retry can
fix (401, 403, 400, 413) raises `DeviceRefused` with the server's own message at once. A
409 on a chunk means the server already took it (its reply was lost): not an error.

The service itself never answers 404, so a 404 comes from Serve's HTTP proxy: the
service's routes are not there yet (it is starting or redeploying after a restart), or the
device was pointed at the wrong address. Both look alike on the wire, so a 404 is waited
for like a 503, but only for `route_grace_s`: long enough for a deployment to come up, short
enough that a wrong URL is reported while someone is still watching.

`WireStats` counts the HTTP bytes each way (request and status lines, headers and bodies;
TCP/IP framing is not counted) beside the payload bytes, and each request's latency.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import requests

from ams_ray.device.runtime import DeviceModelBundle
from ams_ray.wire.messages import SampleChunk

PACKET_SEQUENCE_HEADER = "X-AMS-Packet-Sequence"  # a packet's number; with the model, the one to poll after
CHUNK_SEQUENCE_HEADER = "X-AMS-Chunk-Sequence"  # with the model: the stream's last chunk, numbering goes on after it
FRAME_SIZE_HEADER = "X-AMS-Frame-Size"  # with the model: HxW of the frames the service takes
DUE_CHUNK_HEADER = "X-AMS-Due-Chunk"  # with a packet: the upload that made its round due (for staleness)
RETRIED_STATUSES = (429, 500, 502, 503, 504)
ROUTE_GRACE_S = 120.0  # how long a 404 (no such route on the proxy) is taken for a deployment still coming up


class DeviceRefused(RuntimeError):
    """The server refused a request for a reason retrying cannot fix; the message is its own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ServerUnavailable(RuntimeError):
    """The server did not answer usefully within the retry budget."""


@dataclass
class RouteStats:
    requests: int = 0
    payload_bytes: int = 0
    wire_bytes: int = 0
    latency_s: list[float] = field(default_factory=list)


@dataclass
class WireStats:
    """Thread-safe tallies by route (model, chunks, packets, status), shared by a device's connections."""

    retries: int = 0
    routes: dict[str, RouteStats] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, route: str, seconds: float, payload: int, wire: int) -> None:
        with self._lock:
            stats = self.routes.setdefault(route, RouteStats())
            stats.requests += 1
            stats.payload_bytes += payload
            stats.wire_bytes += wire
            stats.latency_s.append(seconds)

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def report(self) -> dict:
        """Totals, and per route its bytes and latency (p50, p95 and the samples, for pooling)."""
        with self._lock:
            routes = {name: {"requests": r.requests, "payload_bytes": r.payload_bytes, "wire_bytes": r.wire_bytes,
                             "latency_p50_s": float(np.percentile(r.latency_s, 50)),
                             "latency_p95_s": float(np.percentile(r.latency_s, 95)), "latency_s": list(r.latency_s)}
                      for name, r in self.routes.items()}
            payload = sum(r.payload_bytes for r in self.routes.values())
            wire = sum(r.wire_bytes for r in self.routes.values())
            return {"requests": sum(r.requests for r in self.routes.values()), "retries": self.retries,
                    "payload_bytes": payload, "wire_bytes": wire, "routes": routes}


def _headers_size(headers) -> int:
    return sum(len(k) + len(str(v)) + 4 for k, v in headers.items()) + 2  # "k: v\r\n" ... "\r\n"


@dataclass(frozen=True)
class StartingPoint:
    """What a device starts from: the pretrained model, the packet number to poll after, the
    stream's last chunk number (a returning device numbers on from it) and the frame size."""

    bundle: DeviceModelBundle
    packet_sequence: int
    chunk_sequence: int
    frame_size: tuple[int, int]


class DeviceLink:
    """One HTTP session to the service for one device. Not shared between threads: make one
    per thread, all with the same `WireStats`."""

    def __init__(self, server: str, device_id: str, token: str, stats: WireStats, timeout_s: float = 30.0,
                 give_up_after_s: float = 300.0, route_grace_s: float = ROUTE_GRACE_S) -> None:
        self.base = f"{server.rstrip('/')}/v1/streams/{device_id}"
        self.stats, self.timeout_s, self.give_up_after_s = stats, timeout_s, give_up_after_s
        self.route_grace_s = route_grace_s
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def fetch_model(self) -> "StartingPoint":
        reply = self._request("GET", "model")
        height, width = reply.headers[FRAME_SIZE_HEADER].split("x")
        return StartingPoint(DeviceModelBundle.from_bytes(reply.content), int(reply.headers[PACKET_SEQUENCE_HEADER]),
                             int(reply.headers[CHUNK_SEQUENCE_HEADER]), (int(height), int(width)))

    def upload(self, chunk: SampleChunk) -> dict:
        """Send a chunk; the server's reply (`outcome`, `sampling_rate_fps`). A chunk the server
        already holds comes back as outcome "replayed"."""
        try:
            return self._request("POST", "chunks", data=chunk.to_bytes()).json()
        except DeviceRefused as exc:
            if exc.status == 409:
                return {"outcome": "replayed", "sampling_rate_fps": None}
            raise

    def status(self) -> dict:
        """Where the stream stands on the server: packet and chunk numbers, chunks still `pending`."""
        return self._request("GET", "").json()

    def next_packet(self, after: int, version: int, wait_s: float) -> tuple[int, bytes, int] | None:
        """The next packet after `after` (its number, bytes and the chunk that made its round
        due), if one comes within `wait_s`; the call also tells the server the device holds
        model `version` after packet `after` (an acknowledgement)."""
        reply = self._request("GET", "packets", params={"after": after, "version": version, "wait": wait_s},
                              read_timeout_s=wait_s)
        if reply.status_code == 204:
            return None
        return int(reply.headers[PACKET_SEQUENCE_HEADER]), reply.content, int(reply.headers[DUE_CHUNK_HEADER])

    def _request(self, method: str, route: str, data: bytes | None = None, params: dict | None = None,
                 read_timeout_s: float = 0.0) -> requests.Response:
        deadline = time.monotonic() + self.give_up_after_s
        route_deadline = None  # set by the first 404: the grace counts from when the proxy answers
        delay = 0.5
        while True:
            began = time.perf_counter()
            try:
                reply = self.session.request(method, f"{self.base}/{route}" if route else self.base, data=data,
                                             params=params,
                                             timeout=(10.0, self.timeout_s + read_timeout_s))
            except requests.RequestException as exc:
                problem, wait = f"{type(exc).__name__}", delay
            else:
                self._record(route or "status", reply, time.perf_counter() - began, len(data or b""))
                if reply.status_code < 400:
                    return reply
                if reply.status_code == 404:
                    route_deadline = route_deadline or time.monotonic() + self.route_grace_s
                    if time.monotonic() + delay > route_deadline:
                        raise ServerUnavailable(
                            f"{method} {route}: HTTP 404 for {self.route_grace_s:g} s ({_detail(reply)}); no ams-ray "
                            f"service answers at {self.base}: check the server URL, or that `python -m serve.app` "
                            "finished starting")
                elif reply.status_code not in RETRIED_STATUSES:
                    raise DeviceRefused(reply.status_code, _detail(reply))
                problem = f"HTTP {reply.status_code}"
                wait = float(reply.headers.get("Retry-After", delay)) if reply.status_code in (429, 503) else delay
            if time.monotonic() + wait > deadline:
                raise ServerUnavailable(f"{method} {route}: no answer within {self.give_up_after_s:g} s ({problem})")
            self.stats.retried()
            time.sleep(wait * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 10.0)

    def _record(self, route: str, reply: requests.Response, seconds: float, sent: int) -> None:
        request = reply.request
        wire = len(f"{request.method} {request.path_url} HTTP/1.1\r\n") + _headers_size(request.headers) + sent
        wire += len(f"HTTP/1.1 {reply.status_code} {reply.reason}\r\n") + _headers_size(reply.headers) \
            + len(reply.content)
        self.stats.record(route, seconds, sent + len(reply.content), wire)


def _detail(reply: requests.Response) -> str:
    try:
        return str(reply.json().get("detail", reply.text))
    except ValueError:
        return reply.text[:300]
