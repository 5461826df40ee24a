"""The HTTP ingress: where devices in the field meet the service (`/v1/...`, OpenAPI at /docs).

Each request is checked in the order that costs least to refuse: the bearer token (401),
the stream it names (403: a token grants its own stream only), the device's request budget
(429), the body's size (413), then the chunk itself (400), decoded once in a separate
process (`ams_ray.service.untrusted_chunks`). Only then does a trainer host see it, and a replayed
chunk (409) changes nothing there. Every refusal is counted in `ams_errors_total`
(component "ingress") with its kind.

Replicas hold no stream state, so there may be any number of them (`--ingress-replicas`):
each asks the stream directory (`actors/stream_directory.py`, started by the first replica
that needs it and outliving them all) which host holds a stream, caches the answer, and
asks again when the host says the stream is not (or no longer) its, or is gone. Each
replica keeps its own request budgets, so a device's budget is split evenly between the
most replicas the deployment may have (a device sends a few requests a minute, far below
any share); tokens are re-read from the store by each replica within `refresh_s`.
"""


import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, HTTPException, Query, Request, Response
from ray import serve
from ray.exceptions import ActorDiedError, RayError

from actors.stream_directory import HostRecipe, Placement, find_directory
from actors.telemetry import ErrorCounter
from ams_ray.config import AmsConfig
from ams_ray.device.link import CHUNK_SEQUENCE_HEADER, DUE_CHUNK_HEADER, FRAME_SIZE_HEADER, PACKET_SEQUENCE_HEADER
from ams_ray.models.student_spec import StudentSpec
from ams_ray.service.device_registry import DeviceRegistry, TokenCheck
from ams_ray.service.rate_limit import RateLimiter
from ams_ray.service.settings import ServiceSettings
from ams_ray.service.stream_lease import LeaseLost
from ams_ray.service.trainer_settings import TrainerSettings
from ams_ray.service.untrusted_chunks import ChunkLimits, ChunkRejected, IsolatedDecoder, parse_envelope
from serve.replicas import replica_names

log = logging.getLogger(__name__)
API_VERSION = "v1"
OCTETS = "application/octet-stream"
HOST_ATTEMPTS = 3  # a call follows a stream this many times (moved, host gone) before answering 503

app = FastAPI(title="ams-ray device API", version="1",
              description="Devices upload sampled chunks and fetch model update packets. Every /v1 route takes "
                          "`Authorization: Bearer <token>` from `python -m serve.devices add`.")


class Refused(HTTPException):
    """A request refused with `status`; `kind` is what `ams_errors_total` counts it as."""

    def __init__(self, status: int, kind: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail, headers)
        self.kind = kind


@serve.deployment(name="DeviceIngress", num_replicas=1, max_ongoing_requests=1024,
                  ray_actor_options={"num_cpus": 0.1}, health_check_period_s=10, health_check_timeout_s=30)
@serve.ingress(app)
class DeviceIngress:
    def __init__(self, teacher, settings: ServiceSettings, student: StudentSpec | None, directory=None) -> None:
        """Standalone, the replica finds (or starts) the service's stream directory with the
        first device. A fleet run (`multi_client.py --transport http`) passes a `directory` over
        the hosts it placed instead."""
        self.teacher, self.settings, self.student, self.directory = teacher, settings, student, directory
        self.profile = AmsConfig.for_profile(settings.profile)
        self.tokens = TokenCheck(DeviceRegistry(settings.state_url))
        share = settings.ingress_replicas.high  # each replica enforces its share of a device's budget
        self.limiter = RateLimiter(settings.requests_per_s / share, max(1, settings.request_burst // share))
        self.decoder = IsolatedDecoder(ChunkLimits(self.profile.video.height, self.profile.video.width,
                                                   settings.max_chunk_frames, settings.max_body_bytes))
        self.errors = ErrorCounter("ingress")
        self.placements: dict[str, Placement] = {}  # the directory's answers, until a host says otherwise
        self._starting = asyncio.Lock()

    # ------------------------------------------------------------------ routes
    @app.get("/healthz")
    async def healthz(self) -> dict:
        """Up: the ingress replicas, the live trainer hosts and the streams open on them."""
        directory = await self._call(self.directory.status.remote()) if self.directory is not None else None
        return {"status": "ok", "api": API_VERSION, "ingress_replicas": await asyncio.to_thread(self._replicas),
                "trainer_hosts": len(directory["hosts"]) if directory else 0,
                "open_streams": directory["open_streams"] if directory else 0,
                "moving_streams": len(directory["moving"]) if directory else 0}

    def check_health(self) -> None:
        """Serve's health check: a replica that cannot read the device registry admits nobody."""
        self.tokens.registry.devices()

    @app.get(f"/{API_VERSION}/streams/{{stream_id}}")
    async def stream_status(self, stream_id: str, request: Request) -> dict:
        """Where the stream stands: its host and lease epoch, packet and chunk numbers, rounds,
        the checkpoint it resumed from."""
        async with self._refusals():
            await self._admit(stream_id, request)
            return await self._on_host(stream_id, lambda host, epoch: host.stream_status.remote(stream_id, epoch))

    @app.post(f"/{API_VERSION}/streams/{{stream_id}}/chunks")
    async def upload_chunk(self, stream_id: str, request: Request) -> dict:
        """One uplink chunk (`SampleChunk` bytes). Replies with the sampling rate to use next."""
        async with self._refusals():
            await self._admit(stream_id, request)
            data = await self._body(request)
            chunk = parse_envelope(data, stream_id, self.decoder.limits)
            await asyncio.get_running_loop().run_in_executor(None, self.decoder.check, chunk)
            outcome, rate = await self._on_host(
                stream_id, lambda host, epoch: host.submit_chunk.remote(stream_id, data, epoch))
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
            await self._admit(stream_id, request)
            timeout = min(wait, self.settings.long_poll_s)
            reply = await self._on_host(
                stream_id, lambda host, epoch: host.next_packet.remote(stream_id, after, version, timeout, epoch), timeout)
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
            await self._admit(stream_id, request)
            bundle = await self._on_host(stream_id, lambda host, epoch: host.edge_bundle.remote())
            info = await self._on_host(stream_id, lambda host, epoch: host.device_started.remote(stream_id, epoch))
            return Response(bundle.to_bytes(), media_type=OCTETS,
                            headers={PACKET_SEQUENCE_HEADER: str(info["packet_sequence"]),
                                     CHUNK_SEQUENCE_HEADER: str(info["chunk_sequence"]),
                                     FRAME_SIZE_HEADER: f"{self.profile.video.height}x{self.profile.video.width}"})

    def process(self) -> dict:
        """CPU seconds so far of this replica and its decoder process: the ingress's share of the
        server's CPU (`multi_client.py --transport http`)."""
        return {"cpu_seconds": time.process_time() + self.decoder.cpu_seconds()}

    # ------------------------------------------------------------------ checks
    async def _admit(self, stream_id: str, request: Request) -> None:
        """Token, stream and request budget, in that order. The registry is read off the event
        loop, and only when the token cache is due (`TokenCheck`)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        device = None
        if scheme.lower() == "bearer" and token:
            if self.tokens.needs_reload(token):
                await asyncio.to_thread(self.tokens.reload)
            device = self.tokens.known(token)
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
    async def _on_host(self, stream_id: str, call, extra_s: float = 0.0):
        """`call(host, epoch)` on the host holding `stream_id`, following the stream when the
        host says it moved (LeaseLost) or is gone for good, at most HOST_ATTEMPTS times."""
        for _ in range(HOST_ATTEMPTS):
            placement = self.placements.get(stream_id) or await self._locate(stream_id)
            try:
                return await self._call(call(placement.handle, placement.epoch), extra_s)
            except LeaseLost:
                self.placements.pop(stream_id, None)
                await self._call(self.directory.lease_lost.remote(stream_id, placement.host, placement.epoch))
            except ActorDiedError:
                self.placements.pop(stream_id, None)
                await self._call(self.directory.unreachable.remote(placement.host))
        raise Refused(503, "trainer_unavailable", f"stream {stream_id} is moving between trainer hosts; retry shortly",
                      {"Retry-After": "1"})

    async def _locate(self, stream_id: str) -> Placement:
        if self.directory is None:
            async with self._starting:
                if self.directory is None:
                    self.directory = find_directory(await self._recipe(), self.settings.hosts,
                                                    self.settings.streams_per_host)
        self.placements[stream_id] = await self._call(self.directory.locate.remote(stream_id))
        return self.placements[stream_id]

    async def _recipe(self) -> HostRecipe:
        s = self.settings
        trainer = TrainerSettings(s.checkpoint_url, s.call_timeout_s, idle_retire_s=s.idle_retire_s,
                                  scheduler=s.scheduler)
        return HostRecipe(self.student, await self.teacher.num_classes.remote(None), self.profile.model_dump_json(),
                          s.strategy, self.teacher, trainer, s.cpus_per_trainer, s.trainer_gpus)

    @staticmethod
    def _replicas() -> int:
        """Live replicas of this deployment."""
        context = serve.get_replica_context()
        return len(replica_names(context.app_name, context.deployment))

    async def _call(self, ref, extra_s: float = 0.0):
        """A trainer call bounded by the service's timeout; an unreachable host is a 503 to retry."""
        try:
            return await asyncio.wait_for(ref, self.settings.call_timeout_s + extra_s)
        except (LeaseLost, ActorDiedError):
            raise
        except (RayError, asyncio.TimeoutError) as exc:
            raise Refused(503, "trainer_unavailable", f"the stream's trainer did not answer ({type(exc).__name__}); "
                                                      "retry shortly", {"Retry-After": "2"}) from exc
