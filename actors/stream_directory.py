"""StreamDirectory: which trainer host holds each stream, and the pool of hosts itself.

The service's hosts belong to the cluster, not to an ingress replica: the directory is a
detached, named actor (`stream-directory` in the namespace `ams-service`) that starts the
hosts as detached, named actors too (`trainer-host-<n>`), so `ray list actors` shows them and
any ingress replica, old or new, reaches the same ones. It answers one question for the
ingress, `locate(stream)`, with the host and the stream's lease epoch:

* A stream is placed by rendezvous hashing over the live hosts
  (`ams_ray.service.stream_placement`) and leased to that host with a new epoch
  (`ams_ray.service.stream_lease`): the host's log writes carry it, so a host that lost the
  stream cannot write it.
* The pool grows and shrinks within its range (`ams_ray.service.host_pool`). A new host takes
  over the streams whose rendezvous top it now is; each is moved by drain: the old host
  `release`s it (finishing its running round, waiting for the device to acknowledge its
  packets, landing its writes), then the next `locate` leases it to the new host, which
  restores it from its log. Callers asking for a stream on the move wait for the move, they
  are not refused.
* A host that died for good (its restarts spent, or killed) is dropped, and its streams are
  placed afresh on the survivors, resuming from their logs. The directory notices within
  `WATCH_EVERY_S`, or sooner when an ingress reports a host unreachable.
* Restarted itself, the directory rebuilds its table from the named hosts that are still
  there (`held_streams`), keeping only the copies whose lease in the store is still their
  host's (`current_holdings`), so streams carry on where they were.
* A host that refuses a stream where the directory placed it (an ingress reports the
  `LeaseLost`, `lease_lost`) loses the placement: the next `locate` leases it afresh.

A benchmark's fleet uses the same directory over hosts it placed itself (`fixed`): nothing
is leased, moved or started then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayError

from actors.coordinator import start_coordinator
from actors.trainer import TrainerHost
from ams_ray.models.student_spec import StudentSpec
from ams_ray.service.checkpoint_store import CheckpointStore
from ams_ray.service.host_pool import PoolSizer, ScaleRange
from ams_ray.service.stream_lease import current_holdings, grant
from ams_ray.service.stream_placement import moves, owner
from ams_ray.service.trainer_settings import TrainerSettings

log = logging.getLogger(__name__)
NAMESPACE = "ams-service"
DIRECTORY_NAME = "stream-directory"
HOST_PREFIX = "trainer-host-"
COORDINATOR_NAME = f"{NAMESPACE}/training-turns"
WATCH_EVERY_S = 2.0
PING_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HostRecipe:
    """What every trainer host of the service is built from."""

    student: StudentSpec
    num_classes: int
    config_json: str
    strategy: str
    teacher: object  # the teacher deployment's handle
    settings: TrainerSettings
    num_cpus: float
    num_gpus: float


@dataclass(frozen=True)
class Placement:
    host: str
    epoch: int | None  # None: a fixed placement, unfenced
    handle: object


def find_directory(recipe: HostRecipe, pool: ScaleRange, streams_per_host: int):
    """The service's directory, started by whichever ingress replica asks first."""
    return StreamDirectory.options(name=DIRECTORY_NAME, namespace=NAMESPACE, lifetime="detached",
                                   get_if_exists=True).remote(recipe, pool, streams_per_host)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class StreamDirectory:
    def __init__(self, recipe: HostRecipe | None, pool: ScaleRange, streams_per_host: int,
                 fixed: dict[str, tuple[str, object]] | None = None) -> None:
        """`fixed`: stream -> (host name, handle), for a fleet that placed its own hosts."""
        self.recipe, self.sizer = recipe, PoolSizer(pool, streams_per_host)
        self.store = CheckpointStore(recipe.settings.checkpoint_url) if recipe else None
        self.hosts: dict[str, object] = {name: handle for name, handle in (fixed or {}).values()}
        self.placed: dict[str, tuple[str, int | None]] = {sid: (name, None) for sid, (name, _) in (fixed or {}).items()}
        self.moving: dict[str, asyncio.Event] = {}
        self.open: dict[str, int] = {}  # streams open on each host at the last watch (idle ones retire)
        self.events: list[dict] = []  # what happened to the pool: hosts added, lost, retired; streams moved
        self.fixed = fixed is not None
        self.stopping = False  # drained: no stream is placed any more
        self._placing: dict[str, asyncio.Task] = {}  # one lease per placement, however many callers ask at once
        self._started: asyncio.Task | None = None
        self._changing = asyncio.Lock()  # one change of the pool at a time

    # ------------------------------------------------------------------ what the ingress asks
    async def locate(self, stream_id: str) -> Placement:
        """The host holding `stream_id` and its lease epoch, placing and leasing it if nobody
        holds it; waits while the stream moves."""
        await self._ready()
        while stream_id in self.moving:
            await self.moving[stream_id].wait()
        if self.stopping:
            raise RuntimeError("the service is stopping: no stream is placed")
        if stream_id in self.placed and self.placed[stream_id][0] in self.hosts:
            host, epoch = self.placed[stream_id]
            return Placement(host, epoch, self.hosts[host])
        if self.fixed:
            raise KeyError(f"stream {stream_id} is not one of this run's streams")
        if stream_id not in self._placing:
            self._placing[stream_id] = asyncio.get_running_loop().create_task(self._place(stream_id))
        try:
            return await asyncio.shield(self._placing[stream_id])
        finally:
            self._placing.pop(stream_id, None)

    async def _place(self, stream_id: str) -> Placement:
        host = owner(stream_id, self.hosts)
        lease = await asyncio.to_thread(grant, self.store, stream_id, host)
        self.placed[stream_id] = (host, lease.epoch)
        return Placement(host, lease.epoch, self.hosts[host])

    async def lease_lost(self, stream_id: str, host: str, epoch: int | None) -> None:
        """An ingress was told by `host` that it does not hold `stream_id` at `epoch` although
        that is where this directory placed it (a copy the host let go, or one adopted after a
        restart whose lease had moved on): forget the placement, so the next `locate` leases the
        stream afresh. A report about an older placement changes nothing."""
        if self.placed.get(stream_id) == (host, epoch) and stream_id not in self.moving and not self.fixed:
            del self.placed[stream_id]
            self._event("lease_lost", stream=stream_id, host=host, epoch=epoch)
            log.warning("directory: host %s no longer holds %s at epoch %s; it is leased afresh", host, stream_id,
                        epoch)

    async def unreachable(self, host: str) -> None:
        """An ingress could not reach `host`: check now rather than at the next watch."""
        await self._ready()
        if host in self.hosts and await self._held(host) is None:
            await self._lost(host)

    async def status(self) -> dict:
        await self._ready()
        return {"hosts": sorted(self.hosts), "open_streams": sum(self.open.values()), "moving": sorted(self.moving),
                "pool": str(self.sizer.scale),
                "streams": {sid: {"host": h, "epoch": e} for sid, (h, e) in sorted(self.placed.items())},
                "events": self.events[-50:]}

    # ------------------------------------------------------------------ what operators ask
    async def add_host(self) -> str:
        """One more host, kept (the pool's floor rises by one): its share of streams moves to it."""
        await self._ready()
        scale = self.sizer.scale
        self.sizer.scale = ScaleRange(len(self.hosts) + 1, max(scale.high, len(self.hosts) + 1))
        async with self._changing:
            return await self._grow()

    async def drain(self) -> int:
        """The service is stopping: every host lets its streams go cleanly (rounds finish, packets
        are acknowledged or time out, writes land, polls are answered). Returns streams released."""
        self.stopping = True
        self.sizer.scale = ScaleRange(max(1, len(self.hosts)), max(1, len(self.hosts)))  # no more growth
        replies = await asyncio.gather(*(self._call(h.release_all.remote(), 120.0) for h in self.hosts.values()),
                                       return_exceptions=True)
        self.placed.clear()
        return sum(len(r) for r in replies if isinstance(r, list))

    def shutdown(self) -> None:
        """Kill the hosts and the coordinator this directory started (after `drain`)."""
        for name in list(self.hosts):
            ray.kill(self.hosts.pop(name), no_restart=True)
        try:
            ray.kill(ray.get_actor(COORDINATOR_NAME.split("/")[1], namespace=NAMESPACE), no_restart=True)
        except ValueError:
            pass

    # ------------------------------------------------------------------ the pool
    async def _ready(self) -> None:
        """The pool is up (started once; a start that failed is tried again by the next caller)."""
        if self._started is None or (self._started.done() and self._started.exception() is not None):
            self._started = asyncio.get_running_loop().create_task(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        """Adopt the hosts a previous incarnation started, then fill the pool to its floor and
        keep watching it."""
        if self.fixed:
            return
        start_coordinator(COORDINATOR_NAME, self.recipe.settings.scheduler, self.recipe.settings.call_timeout_s)
        await self._adopt()
        while len(self.hosts) < self.sizer.scale.low:
            await self._start_host()
        asyncio.get_running_loop().create_task(self._watch())

    async def _adopt(self) -> None:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["namespace"] == NAMESPACE and a["name"].startswith(HOST_PREFIX)]
        for name in sorted(names):
            handle = ray.get_actor(name, namespace=NAMESPACE)
            try:
                held = await self._call(handle.held_streams.remote(), PING_TIMEOUT_S)
            except RayError as exc:
                log.warning("directory: host %s from before the restart does not answer (%s); not adopted",
                            name, type(exc).__name__)
                continue
            self.hosts[name] = handle
            current = await asyncio.to_thread(current_holdings, self.store, name, held)
            self.placed.update({sid: (name, epoch) for sid, epoch in current.items()})
        if self.hosts:
            self._event("adopted", hosts=sorted(self.hosts), streams=len(self.placed))
            log.warning("directory restarted: adopted %d hosts holding %d streams", len(self.hosts), len(self.placed))

    async def _start_host(self) -> str:
        numbers = [int(n[len(HOST_PREFIX):]) for n in self.hosts]
        name = f"{HOST_PREFIX}{max(numbers, default=-1) + 1}"
        r = self.recipe
        # No task retries: a caller that finds the host gone asks the directory where the stream is now.
        options = {"name": name, "namespace": NAMESPACE, "lifetime": "detached", "num_cpus": r.num_cpus,
                   "num_gpus": r.num_gpus, "max_task_retries": 0}
        handle = TrainerHost.options(**options).remote(name, [], r.student, r.num_classes, r.config_json, r.strategy,
                                                       r.teacher, COORDINATOR_NAME, r.settings)
        waited = r.settings.call_timeout_s * 5  # torch imports are slow on a busy node; an autoscaler, slower
        try:
            await self._call(handle.ready.remote(), waited)
        except RayError as exc:
            ray.kill(handle, no_restart=True)
            raise RuntimeError(f"trainer host {name} did not start within {waited:g} s ({type(exc).__name__}): no node "
                               f"had {r.num_cpus:g} CPUs and {r.num_gpus:g} GPUs free for it, or it failed; add nodes "
                               "(an autoscaler adds them for a pending host) or lower --hosts") from exc
        self.hosts[name] = handle
        self._event("host_added", host=name)
        log.info("directory: host %s started (%d in the pool)", name, len(self.hosts))
        return name

    async def _grow(self) -> str:
        before = list(self.hosts)
        name = await self._start_host()
        await self._move(moves(list(self.placed), before, list(self.hosts)))
        return name

    async def _shrink(self) -> None:
        """Retire the newest host: its streams move to their next-ranked hosts, then it stops."""
        name = max(self.hosts, key=lambda n: int(n[len(HOST_PREFIX):]))
        survivors = [h for h in self.hosts if h != name]
        await self._move(moves([s for s, (h, _) in self.placed.items() if h == name], list(self.hosts), survivors))
        ray.kill(self.hosts.pop(name), no_restart=True)
        self.open.pop(name, None)
        self._event("host_retired", host=name)

    async def _move(self, changed: dict[str, tuple[str, str]]) -> None:
        """Release each stream from its old host; its next `locate` leases it to the new one."""
        for stream in changed:
            self.moving[stream] = asyncio.Event()
        began = time.monotonic()

        async def one(stream: str, old: str) -> None:
            try:
                await self._call(self.hosts[old].release.remote(stream), self.recipe.settings.call_timeout_s)
            except RayError as exc:
                log.warning("directory: host %s did not release %s cleanly (%s); it moves anyway", old, stream,
                            type(exc).__name__)
            finally:
                self.placed.pop(stream, None)
                self.moving.pop(stream).set()

        await asyncio.gather(*(one(stream, old) for stream, (old, _) in changed.items()))
        if changed:
            self._event("moved", streams=sorted(changed), to=sorted({new for _, new in changed.values()}),
                        seconds=round(time.monotonic() - began, 3))

    async def _lost(self, host: str) -> None:
        """A host gone for good: forget it and its placements (they re-place on the next call)."""
        self.hosts.pop(host, None)
        self.open.pop(host, None)
        orphans = [s for s, (h, _) in self.placed.items() if h == host]
        for stream in orphans:
            del self.placed[stream]
        self._event("host_lost", host=host, streams=sorted(orphans))
        log.warning("directory: host %s is gone; its %d streams resume on the other hosts", host, len(orphans))

    async def _watch(self) -> None:
        """Every WATCH_EVERY_S: drop dead hosts, then move the pool one step towards its target."""
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            try:
                async with self._changing:
                    hosts = list(self.hosts)
                    for host, held in zip(hosts, await asyncio.gather(*(self._held(h) for h in hosts))):
                        if held is None:
                            await self._lost(host)
                        elif held >= 0:
                            self.open[host] = held
                    target = self.sizer.target(len(self.hosts), sum(self.open.values()), time.monotonic())
                    if target > len(self.hosts):
                        await self._grow()
                    elif target < len(self.hosts):
                        await self._shrink()
            except Exception as exc:  # noqa: BLE001 - the watch must outlive one bad round
                log.error("directory: watching the pool failed: %s: %s", type(exc).__name__, exc)

    async def _held(self, host: str) -> int | None:
        """Streams open on `host`; None when it is dead for good, -1 when it does not answer now
        (restarting, or busy)."""
        try:
            return len(await self._call(self.hosts[host].held_streams.remote(), PING_TIMEOUT_S))
        except ActorDiedError:
            return None
        except (RayError, GetTimeoutError):
            return -1

    @staticmethod
    async def _call(ref, timeout_s: float):
        try:
            return await asyncio.wait_for(ref, timeout_s)
        except asyncio.TimeoutError as exc:
            raise GetTimeoutError(f"no answer within {timeout_s:g} s") from exc

    def _event(self, kind: str, **details) -> None:
        self.events.append({"event": kind, "at": time.time(), **details})

