"""Ingress load: many devices' chunk uploads and long-polls against 1 and 2 ingress replicas.

    .venv/bin/python benchmarks/ingress_load.py --devices 64 --period 2 --replicas 1 2 --seconds 60 \\
        --out runs/ingress_load

For each replica count the whole service starts afresh on a loopback Ray cluster (teacher
network, stream directory, trainer hosts, `--replicas` ingress replicas) and `--devices`
registered devices each upload one chunk every `--period` seconds (10 s is a real device's
send period; less compresses time), one upload at a time, while keeping one long-poll open,
as the device client does. The load generator is one asyncio loop over aiohttp with chunks encoded before the
clock starts (one H.264 bitstream of 10 real frames, re-enveloped per device and sequence),
so it costs little CPU next to the service. Every loop stops after `--seconds` or
`--max-requests` uploads per device, whichever comes first; every request has a timeout.

Reported per replica count: chunks/s answered (any outcome: accepted, or shed when a
stream's labelling backlog is full, which is the service protecting itself, not the
ingress failing), p50/p99 upload latency over every upload and over the second half of the
run (steady: each device's first upload also opens its stream on a trainer host), errors (anything but 200 for an upload, or a
request that failed, counted by status under `statuses`: 0 is no answer within 60 s), and
429s apart (the per-replica share of each device's budget).
Writes DIR/ingress_load.json (one row per replica count under `rows`) and DIR/ingress_load.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.loopback import use_loopback_only  # noqa: E402
from ams_ray.device.link import PACKET_SEQUENCE_HEADER  # noqa: E402
from benchmarks.service_faults import free_port  # noqa: E402

FRAMES_PER_CHUNK = 10
POLL_WAIT_S = 20.0
REQUEST_TIMEOUT_S = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=64)
    p.add_argument("--period", type=float, default=2.0, help="seconds between a device's uploads (10: real time)")
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=60.0, help="how long each load runs")
    p.add_argument("--max-requests", type=int, default=1000, help="uploads per device at most")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def encoded_chunks(devices: list[str], count: int) -> dict[str, list[bytes]]:
    """Each device's uploads 1..count as wire bytes: one real H.264 bitstream, many envelopes."""
    from ams_ray.data.synthetic import SyntheticVideo
    from ams_ray.data.video import encode_chunk
    from ams_ray.wire.messages import SampleChunk

    video = SyntheticVideo(5, duration_s=float(FRAMES_PER_CHUNK), fps=1.0, height=128, width=256)
    h264 = encode_chunk(np.stack([video.frame(i) for i in range(FRAMES_PER_CHUNK)]))
    chunks = {}
    for device in devices:
        chunks[device] = [SampleChunk(device, k, tuple(range((k - 1) * FRAMES_PER_CHUNK, k * FRAMES_PER_CHUNK)),
                                      tuple(float(t) for t in range((k - 1) * FRAMES_PER_CHUNK, k * FRAMES_PER_CHUNK)),
                                      h264).to_bytes() for k in range(1, count + 1)]
    return chunks


async def device_load(session, url: str, device: str, token: str, chunks: list[bytes], period_s: float,
                      stop_at: float, results: list) -> None:
    """One device: an upload every `period_s`, one at a time (late when the last answer was),
    and one long-poll at a time, until `stop_at` or its chunks run out."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)

    async def upload(data: bytes) -> None:
        began = time.perf_counter()
        try:
            async with session.post(f"{url}/v1/streams/{device}/chunks", data=data, timeout=timeout,
                                    headers={**headers, "Content-Type": "application/octet-stream"}) as reply:
                await reply.read()
                results.append((began, time.perf_counter() - began, reply.status))
        except (aiohttp.ClientError, asyncio.TimeoutError):
            results.append((began, time.perf_counter() - began, 0))

    async def poll() -> None:
        after = 0
        while time.perf_counter() < stop_at:
            wait = min(POLL_WAIT_S, max(0.0, stop_at - time.perf_counter()))
            try:
                async with session.get(f"{url}/v1/streams/{device}/packets", params={"after": after, "wait": wait},
                                       headers=headers, timeout=timeout) as reply:
                    await reply.read()
                    if reply.status == 200:
                        after = int(reply.headers.get(PACKET_SEQUENCE_HEADER, after))
                    elif reply.status != 204:
                        await asyncio.sleep(1.0)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(1.0)

    poller = asyncio.create_task(poll())
    start = time.perf_counter()
    for k, data in enumerate(chunks):
        due = start + k * period_s
        if due >= stop_at:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await upload(data)  # one upload in flight, as the device client's uploader: a slow answer delays the next
    poller.cancel()
    await asyncio.gather(poller, return_exceptions=True)


async def run_load(url: str, tokens: dict[str, str], chunks: dict[str, list[bytes]], period_s: float,
                   seconds: float) -> tuple[list, float]:
    import aiohttp

    results: list = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        stop_at = began + seconds
        # Devices start spread over one period, as real ones are.
        await asyncio.gather(*(_after(k * period_s / len(tokens), device_load(
            session, url, device, token, chunks[device], period_s, stop_at, results))
            for k, (device, token) in enumerate(tokens.items())))
        return results, time.perf_counter() - began


async def _after(delay_s: float, work) -> None:
    await asyncio.sleep(delay_s)
    await work


def one_replica_count(args: argparse.Namespace, replicas: int, chunks: dict[str, list[bytes]]) -> dict:
    """Start the service with `replicas` ingress replicas, load it, stop it; returns its row."""
    from ams_ray.service.device_registry import DeviceRegistry
    from serve.app import build_app, start, stop, wait_healthy

    state = args.out / f"state-{replicas}"
    settings = {"state_url": str(state), "host": "127.0.0.1", "port": free_port(), "hosts": "2",
                "ingress_replicas": str(replicas), "idle_retire_s": 3600.0, "shared_state": False}
    registry = DeviceRegistry(state)
    tokens = {device: registry.add(device) for device in chunks}
    try:
        url = start(build_app(settings), settings, None)
        wait_healthy(url, threading.Event())
        print(f"{replicas} ingress replica(s): {len(tokens)} devices, one upload each per {args.period:g} s, "
              f"for {args.seconds:g} s", flush=True)
        results, wall_s = asyncio.run(run_load(url, tokens, chunks, args.period, args.seconds))
    finally:
        stop()
    latencies = [seconds for _, seconds, status in results if status == 200]
    first = min((began for began, _, _ in results), default=0.0)
    steady = [seconds for began, seconds, status in results if status == 200 and began - first >= wall_s / 2]
    statuses = [status for _, _, status in results]
    return {"replicas": replicas, "devices": len(tokens), "offered_chunks_per_s": len(tokens) / args.period,
            "uploads": len(results), "chunks_per_s": len(latencies) / wall_s,
            "p50_upload_s": float(np.percentile(latencies, 50)) if latencies else None,
            "p99_upload_s": float(np.percentile(latencies, 99)) if latencies else None,
            "p50_steady_s": float(np.percentile(steady, 50)) if steady else None,
            "p99_steady_s": float(np.percentile(steady, 99)) if steady else None,
            "errors": sum(1 for s in statuses if s != 200), "statuses": {str(s): statuses.count(s) for s in set(statuses)},
            "rate_limited": statuses.count(429),
            "failed_requests": statuses.count(0), "wall_s": wall_s}


def plot(rows: list[dict], path: Path) -> None:
    fig, (held, latency) = plt.subplots(1, 2, figsize=(9, 3.8))
    labels = [f"{r['replicas']} replica{'s' if r['replicas'] > 1 else ''}" for r in rows]
    held.bar(labels, [r["chunks_per_s"] for r in rows], color="tab:blue")
    held.axhline(rows[0]["offered_chunks_per_s"], color="grey", linestyle="--", label="offered")
    held.set_ylabel("chunks/s answered")
    held.legend()
    x = np.arange(len(rows))
    for offset, key, label in ((-0.3, "p50_steady_s", "p50 steady"), (-0.1, "p99_steady_s", "p99 steady"),
                               (0.1, "p50_upload_s", "p50 all"), (0.3, "p99_upload_s", "p99 all")):
        latency.bar(x + offset, [r[key] or 0 for r in rows], 0.2, label=label)
    latency.set_xticks(x, labels)
    latency.set_ylabel("upload latency (s, log scale)")
    latency.set_yscale("log")
    for axis in (latency.yaxis.set_major_formatter, latency.yaxis.set_minor_formatter):
        axis(matplotlib.ticker.FormatStrFormatter("%g"))
    latency.legend(fontsize=7, loc="upper center", ncol=2, bbox_to_anchor=(0.5, -0.12))
    fig.suptitle(f"Ingress under {rows[0]['devices']} devices")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_loopback_only()
    args.out.mkdir(parents=True, exist_ok=True)
    devices = [f"load-{k:04d}" for k in range(args.devices)]
    chunks = encoded_chunks(devices, min(args.max_requests, int(args.seconds / args.period) + 1))
    rows = [one_replica_count(args, replicas, chunks) for replicas in args.replicas]
    (args.out / "ingress_load.json").write_text(json.dumps({"rows": rows}, indent=1))
    plot(rows, args.out / "ingress_load.png")
    for r in rows:
        print(f"{r['replicas']} replica(s): {r['chunks_per_s']:.1f} chunks/s of {r['offered_chunks_per_s']:.1f} offered, "
              f"p50/p99 {_ms(r['p50_upload_s'])}/{_ms(r['p99_upload_s'])} ms "
              f"(steady {_ms(r['p50_steady_s'])}/{_ms(r['p99_steady_s'])} ms), {r['errors']} errors "
              f"({r['rate_limited']} rate-limited, {r['failed_requests']} failed)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
