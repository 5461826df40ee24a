"""The HTTP ingress: where devices in the field meet the service (`/v1/...`, OpenAPI at /docs).

Each request is checked in the order that costs least to refuse: the bearer token (401),
the stream it names (403: a token grants its own stream only), the device's request budget
(429), the body's size (413), then the chunk itself (400), decoded once in a separate
process (`ams_ray.service.untrusted_chunks`). Only then does a trainer host see it, and a replayed
chunk (409) changes nothing there. Every refusal is counted in `ams_errors_total`
(component "ingress") with its kind.

The replica owns the coordinator and the trainer hosts, so the whole service is one Serve
application (`serve run` deploys it as is); streams go to hosts by a hash of their id, so
a stream always lands on the same host, where its outbox of packets waits. A host that
dies is restarted by Ray and reopens each stream from its checkpoint when its device next
calls. One replica: a second would start a second set of hosts.
"""


import asyncio
import logging
import time
import uuid
import zlib
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, HTTPException, Query, Request, Response
from ray import serve
from ray.exceptions import RayError

from actors.coordinator import start_coordinator
from actors.telemetry import ErrorCounter
from actors.trainer import TrainerHost
from ams_ray.config import AmsConfig
from ams_ray.device.link import CHUNK_SEQUENCE_HEADER, DUE_CHUNK_HEADER, FRAME_SIZE_HEADER, PACKET_SEQUENCE_HEADER
from ams_ray.models.student_spec import StudentSpec
from ams_ray.service.device_registry import DeviceRegistry, TokenCheck
from ams_ray.service.rate_limit import RateLimiter
from ams_ray.service.settings import ServiceSettings
from ams_ray.service.trainer_settings import TrainerSettings
from ams_ray.service.untrusted_chunks import ChunkLimits, ChunkRejected, IsolatedDecoder, parse_envelope

log = logging.getLogger(__name__)
API_VERSION = "v1"
OCTETS = "application/octet-stream"

app = FastAPI(title="ams-ray device API", version="1",
              description="Devices upload sampled chunks and fetch model update packets. Every /v1 route takes "
                          "`Authorization: Bearer <token>` from `python -m serve.devices add`.")


class Refused(HTTPException):
    """A request refused with `status`; `kind` is what `ams_errors_total` counts it as."""

    def __init__(self, status: int, kind: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail, headers)
        self.kind = kind


@serve.deployment(name="DeviceIngress", num_replicas=1, max_ongoing_requests=1024,
                  ray_actor_options={"num_cpus": 0.1})
@serve.ingress(app)
class DeviceIngress:
    def __init__(self, teacher, settings: ServiceSettings, student: StudentSpec | None, hosts: list | None = None,
                 assignment: dict[str, int] | None = None) -> None:
        """Standalone, the replica starts its own trainer hosts with the first device. A fleet
        run (`multi_client.py --transport http`) passes the `hosts` it placed instead, with the
        `assignment` of each stream to one of them."""
        self.teacher, self.settings, self.student = teacher, settings, student
        self.assignment = assignment
        self.profile = AmsConfig.for_profile(settings.profile)
        self.tokens = TokenCheck(DeviceRegistry(settings.state_url))
        self.limiter = RateLimiter(settings.requests_per_s, settings.request_burst)
        self.decoder = IsolatedDecoder(ChunkLimits(self.profile.video.height, self.profile.video.width,
                                                   settings.max_chunk_frames, settings.max_body_bytes))
        self.errors = ErrorCounter("ingress")
        self.hosts: list = hosts or []
        self.coordinator = None  # kept: a named actor with no handle left is collected
        self._starting = asyncio.Lock()

    # ------------------------------------------------------------------ routes
    @app.get("/healthz")
    async def healthz(self) -> dict:
        """Up; its trainer hosts (started with the first device) and the streams open on them."""
        streams = await asyncio.gather(*(self._call(h.open_streams.remote()) for h in self.hosts))
        return {"status": "ok", "api": API_VERSION, "trainer_hosts": len(self.hosts),
                "open_streams": sum(len(s) for s in streams)}

    @app.get(f"/{API_VERSION}/streams/{{stream_id}}")
    async def stream_status(self, stream_id: str, request: Request) -> dict:
        """Where the stream stands: packet and chunk numbers, rounds, the checkpoint it resumed from."""
        async with self._refusals():
            self._admit(stream_id, request)
            host = await self._host(stream_id)
            return await self._call(host.stream_status.remote(stream_id))

    @app.post(f"/{API_VERSION}/streams/{{stream_id}}/chunks")
    async def upload_chunk(self, stream_id: str, request: Request) -> dict:
        """One uplink chunk (`SampleChunk` bytes). Replies with the sampling rate to use next."""
        async with self._refusals():
            self._admit(stream_id, request)
            data = await self._body(request)
            chunk = parse_envelope(data, stream_id, self.decoder.limits)
            await asyncio.get_running_loop().run_in_executor(None, self.decoder.check, chunk)
            host = await self._host(stream_id)
            outcome, rate = await self._call(host.submit_chunk.remote(stream_id, data))
            if outcome == "replayed":
                raise Refused(409, "replayed_chunk", f"chunk {chunk.sequence} of {stream_id} was already taken "
                                                     "(a replay or an out-of-order upload); nothing changed")
            return {"outcome": outcome, "sampling_rate_fps": rate, "sequence": chunk.sequence}

    @app.get(f"/{API_VERSION}/streams/{{stream_id}}/packets")
    async def next_packet(self, stream_id: str, request: Request, after: int = Query(0, ge=0),
                          version: int | None = Query(None, ge=0), wait: float = Query(20.0, ge=0.0)) -> Response:
        """The oldest update packet numbered above `after`, waiting up to `wait` seconds for
        one (at most the service's long-poll limit); 204 when none came. `version`, the model
        version the device holds after packet `after`, acknowledges that packet: it goes
        into the stream's log."""
        async with self._refusals():
            self._admit(stream_id, request)
            host = await self._host(stream_id)
            timeout = min(wait, self.settings.long_poll_s)
            reply = await self._call(host.next_packet.remote(stream_id, after, version, timeout), timeout)
            if reply is None:
                return Response(status_code=204)
            sequence, packet, due_chunk = reply
            return Response(packet, media_type=OCTETS, headers={PACKET_SEQUENCE_HEADER: str(sequence),
                                                                DUE_CHUNK_HEADER: str(due_chunk)})

    @app.get(f"/{API_VERSION}/streams/{{stream_id}}/model")
    async def model(self, stream_id: str, request: Request) -> Response:
        """The pretrained model bundle a device starts from (version 0). Fetching it restarts
        the stream's packets from that version, so what follows applies to it."""
        async with self._refusals():
            self._admit(stream_id, request)
            host = await self._host(stream_id)
            bundle = await self._call(host.edge_bundle.remote())
            info = await self._call(host.device_started.remote(stream_id))
            return Response(bundle.to_bytes(), media_type=OCTETS,
                            headers={PACKET_SEQUENCE_HEADER: str(info["packet_sequence"]),
                                     CHUNK_SEQUENCE_HEADER: str(info["chunk_sequence"]),
                                     FRAME_SIZE_HEADER: f"{self.profile.video.height}x{self.profile.video.width}"})

    def process(self) -> dict:
        """CPU seconds so far of this replica and its decoder process: the ingress's share of the
        server's CPU (`multi_client.py --transport http`)."""
        return {"cpu_seconds": time.process_time() + self.decoder.cpu_seconds()}

    # ------------------------------------------------------------------ checks
    def _admit(self, stream_id: str, request: Request) -> None:
        """Token, stream and request budget, in that order."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        device = self.tokens.device_for(token) if scheme.lower() == "bearer" and token else None
        if device is None:
            raise Refused(401, "unauthorized", "a valid device token is required: `Authorization: Bearer <token>` "
                          "(issued by `python -m serve.devices add`)", {"WWW-Authenticate": "Bearer"})
        if device != stream_id:
            raise Refused(403, "forbidden_stream", f"this token belongs to device {device}; it grants stream "
                                                   f"{device} only, not {stream_id}")
        retry_after = self.limiter.retry_after_s(device)
        if retry_after:
            raise Refused(429, "rate_limited", f"device {device} exceeds {self.settings.requests_per_s:g} requests/s "
                          f"(burst {self.settings.request_burst})", {"Retry-After": str(max(1, round(retry_after)))})

    async def _body(self, request: Request) -> bytes:
        """The body, read no further than the limit (a declared length is checked first)."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Refused(413, "oversized_chunk", f"body of {declared} bytes exceeds the limit of {limit}")
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > limit:
                raise Refused(413, "oversized_chunk", f"body exceeds the limit of {limit} bytes")
        return bytes(data)

    @asynccontextmanager
    async def _refusals(self) -> AsyncIterator[None]:
        """Counts every refusal by kind, and turns a refused chunk into its 4xx."""
        try:
            yield
        except ChunkRejected as exc:
            self.errors.count(exc.kind)
            raise Refused(413 if exc.kind == "oversized_chunk" else 400, exc.kind, str(exc)) from exc
        except Refused as exc:
            self.errors.count(exc.kind)
            raise

    # ------------------------------------------------------------------ trainer hosts
    async def _host(self, stream_id: str):
        """The host holding `stream_id`, starting the hosts with the first request."""
        if not self.hosts:
            async with self._starting:
                if not self.hosts:
                    self.hosts = await self._start_hosts()
        if self.assignment is not None:
            return self.hosts[self.assignment[stream_id]]
        return self.hosts[zlib.crc32(stream_id.encode()) % len(self.hosts)]

    async def _start_hosts(self) -> list:
        s = self.settings
        num_classes = await self.teacher.num_classes.remote(None)
        coordinator = f"ams-coordinator-{uuid.uuid4().hex[:12]}"
        self.coordinator = start_coordinator(coordinator, "round_robin", s.call_timeout_s)
        trainer = TrainerSettings(s.checkpoint_url, s.call_timeout_s, idle_retire_s=s.idle_retire_s)
        hosts = [TrainerHost.options(num_cpus=s.cpus_per_trainer).remote(
            f"trainer-{k:02d}", [], self.student, num_classes, self.profile.model_dump_json(), s.strategy,
            self.teacher, coordinator, trainer) for k in range(s.trainers)]
        await asyncio.gather(*(h.ready.remote() for h in hosts))
        log.info("started %d trainer hosts", len(hosts))
        return hosts

    async def _call(self, ref, extra_s: float = 0.0):
        """A trainer call bounded by the service's timeout; an unreachable host is a 503 to retry."""
        try:
            return await asyncio.wait_for(ref, self.settings.call_timeout_s + extra_s)
        except (RayError, asyncio.TimeoutError) as exc:
            raise Refused(503, "trainer_unavailable", f"the stream's trainer did not answer ({type(exc).__name__}); "
                                                      "retry shortly", {"Retry-After": "2"}) from exc
