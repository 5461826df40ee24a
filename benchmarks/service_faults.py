"""Faults during a live service run: hosts killed and added, ingress replicas and the stream
directory killed, while HTTP devices stream through the real ingress.

    .venv/bin/python benchmarks/service_faults.py --devices 6 --fault add-host@40 --fault kill-host@80 \\
        --fault kill-ingress@120 --out runs/service_faults

The service is `serve.app`'s (teacher network, stream directory, trainer hosts, two ingress
replicas by default) on a loopback Ray cluster started here; the devices are
`ams_ray.device.HttpDevice`s in this process, each playing a synthetic video in real time
(`--speed`). A fault fires `at_s` seconds after the devices start:

* `kill-host`: the host holding the most streams is killed for good (no restart);
* `add-host`: the directory adds a host, and the streams rendezvous hashing gives it move there;
* `kill-ingress`: one ingress replica is killed (Serve replaces it);
* `restart-directory`: the stream directory is killed and restarted by Ray.

Per event: the streams affected (those on the killed host, those moved, or, for an ingress
or directory fault, those whose device had to retry a request in the next 30 s), the worst
seconds from the fault's action being done (`done_s`: a kill at once, an added host once it
has started and its streams have moved) until an affected device applied its next update
(`resumed_s`, null if one never did or none was affected), and `updates_lost`: model versions the affected devices had to give up
(a device's version falling back, which happens when the service resumed a stream from an
older packet than the device held and resynchronised it from the pretrained model).
Writes DIR/summary.json and DIR/service_faults.png.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.loopback import use_loopback_only  # noqa: E402
from ams_ray.config import AmsConfig  # noqa: E402
from ams_ray.fleet.faults import SERVICE_KINDS, Fault  # noqa: E402

RETRY_WINDOW_S = 30.0  # an ingress or directory fault affects the devices that retried within this
SAMPLE_EVERY_S = 0.25


def parse_fault(text: str) -> Fault:
    try:
        return Fault.parse(text, SERVICE_KINDS)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=6)
    p.add_argument("--fault", type=parse_fault, action="append", default=[],
                   help=f"KIND@SECONDS, KIND one of {', '.join(SERVICE_KINDS)}; repeatable")
    p.add_argument("--hosts", default="2", help="the pool the service starts with (N or MIN..MAX)")
    p.add_argument("--ingress-replicas", default="2")
    p.add_argument("--duration", type=float, default=150.0, help="video seconds each device plays")
    p.add_argument("--speed", type=float, default=1.0, help="video seconds per wall second")
    p.add_argument("--videos", type=int, default=3, help="distinct synthetic videos the devices share")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


# ---------------------------------------------------------------------- the service
def start_service(args: argparse.Namespace, state: Path) -> str:
    """The service on a free loopback port; returns its URL once healthy."""
    from serve.app import build_app, start, wait_healthy

    settings = {"state_url": str(state), "host": "127.0.0.1", "port": free_port(), "hosts": args.hosts,
                "ingress_replicas": args.ingress_replicas, "idle_retire_s": 3600.0, "shared_state": False}
    url = start(build_app(settings), settings, None)
    wait_healthy(url, threading.Event())
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def directory_status() -> dict:
    import ray

    from actors.stream_directory import DIRECTORY_NAME, NAMESPACE

    return ray.get(ray.get_actor(DIRECTORY_NAME, namespace=NAMESPACE).status.remote(), timeout=60)


def fire(fault: Fault) -> list[str] | None:
    """Carry out `fault`; the streams it moved or orphaned, or None when that is decided by
    which devices had to retry."""
    import ray

    from actors.stream_directory import DIRECTORY_NAME, NAMESPACE
    from ams_ray.service.stream_placement import moves
    from serve.app import APP_NAME
    from serve.replicas import replica_names

    before = directory_status()
    streams = {sid: s["host"] for sid, s in before["streams"].items()}
    if fault.kind == "kill-host":
        victim = max(before["hosts"], key=lambda h: (list(streams.values()).count(h), h))
        ray.kill(ray.get_actor(victim, namespace=NAMESPACE), no_restart=True)
        return sorted(sid for sid, host in streams.items() if host == victim)
    if fault.kind == "add-host":
        directory = ray.get_actor(DIRECTORY_NAME, namespace=NAMESPACE)
        added = ray.get(directory.add_host.remote(), timeout=900)
        return sorted(moves(streams, before["hosts"], before["hosts"] + [added]))
    if fault.kind == "kill-ingress":
        name, namespace = replica_names(APP_NAME, "DeviceIngress")[0]
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
        return None
    ray.kill(ray.get_actor(DIRECTORY_NAME, namespace=NAMESPACE), no_restart=False)
    return None


def held_by_host() -> dict[str, dict[str, int | None]]:
    """Every live host's open streams and their epochs, asked of the hosts themselves."""
    import ray

    from actors.stream_directory import NAMESPACE

    hosts = directory_status()["hosts"]
    return {h: ray.get(ray.get_actor(h, namespace=NAMESPACE).held_streams.remote(), timeout=60) for h in hosts}


def stop_service() -> None:
    from serve.app import stop

    stop()


# ---------------------------------------------------------------------- the devices
def start_devices(url: str, state: Path, args: argparse.Namespace, videos: list[Path]) -> list:
    from ams_ray.data.video import VideoReader
    from ams_ray.device.http_device import HttpDevice
    from ams_ray.service.device_registry import DeviceRegistry

    registry = DeviceRegistry(state)
    devices = []
    for k in range(args.devices):
        device_id = f"cam-{k:02d}"
        path = videos[k % len(videos)]
        devices.append(HttpDevice(url, device_id, registry.add(device_id), lambda h, w, p=path: VideoReader(p, h, w),
                                  speed=args.speed, duration_s=args.duration, give_up_after_s=300.0, linger_s=60.0,
                                  send_phase_s=2.0 + 8.0 * k / max(1, args.devices)))
    return devices


def run_devices(devices: list) -> tuple[dict, list[threading.Thread]]:
    reports: dict[str, dict] = {}

    def run(device) -> None:
        try:
            reports[device.device_id] = device.run()
        except Exception as exc:  # noqa: BLE001 - one device's end is reported, the others go on
            reports[device.device_id] = {"device": device.device_id, "failure": f"{type(exc).__name__}: {exc}"}

    threads = [threading.Thread(target=run, args=(d,), daemon=True, name=d.device_id) for d in devices]
    for thread in threads:
        thread.start()
    return reports, threads


def sample(devices: list, began: float) -> dict:
    """Each device's (seconds since start, model version, retries) now."""
    now = time.time() - began
    return {d.device_id: (now, d.client.model.version if d.client else 0, d.stats.retries) for d in devices}


# ---------------------------------------------------------------------- the run
def watch(devices: list, threads: list[threading.Thread], faults: list[Fault], began: float,
          timeout_s: float) -> tuple[list[dict], dict[str, list]]:
    """Fire the faults on time and sample the devices until they are done; returns the fired
    events (fault, at_s, fired_s, streams or None) and each device's samples."""
    pending = sorted(faults, key=lambda f: f.at_s)
    fired: list[dict] = []
    traces: dict[str, list] = {d.device_id: [] for d in devices}
    deadline = began + timeout_s
    while any(t.is_alive() for t in threads) and time.time() < deadline:
        for device_id, point in sample(devices, began).items():
            traces[device_id].append(point)
        if pending and time.time() - began >= pending[0].at_s:
            fault = pending.pop(0)
            at = time.time() - began
            print(f"[{at:6.1f} s] {fault.kind}", flush=True)
            streams = fire(fault)
            fired.append({"fault": fault.kind, "at_s": round(at, 2), "fired_s": round(time.time() - began, 2),
                          "streams": streams})
        time.sleep(SAMPLE_EVERY_S)
    return fired, traces


def outcomes(fired: list[dict], traces: dict[str, list], applied: dict[str, list[float]], began: float,
             end_s: float) -> list[dict]:
    """One row per event: streams affected, worst seconds until each resumed, updates lost."""
    rows = []
    for k, event in enumerate(fired):
        start = event["at_s"]
        until = fired[k + 1]["at_s"] if k + 1 < len(fired) else end_s
        affected = event["streams"]
        if affected is None:  # those whose device retried a request soon after
            affected = [sid for sid, trace in traces.items()
                        if _retries_at(trace, start + RETRY_WINDOW_S) > _retries_at(trace, start)]
        waits = []  # from when the fault's action was done: adding a host is done once its streams have moved
        for sid in affected:
            later = [t - began for t in applied.get(sid, []) if t - began > event["fired_s"]]
            waits.append(min(later) - event["fired_s"] if later else None)
        lost = sum(_versions_given_up(traces[sid], start, until) for sid in affected)
        updated_after = sorted(sid for sid, times in applied.items() if any(t - began > event["fired_s"] for t in times))
        rows.append({"fault": event["fault"], "at_s": start, "done_s": event["fired_s"],
                     "streams_affected": len(affected),
                     "streams": affected,
                     "resumed_s": None if None in waits or not waits else round(max(waits), 2),
                     "updates_lost": lost, "streams_updated_after": len(updated_after)})
    return rows


def _retries_at(trace: list, at_s: float) -> int:
    return max((retries for t, _, retries in trace if t <= at_s), default=0)


def _versions_given_up(trace: list, start_s: float, until_s: float) -> int:
    """Versions lost when a device's model fell back (resynchronised from the pretrained model)."""
    lost, held = 0, None
    for t, version, _ in trace:
        if t < start_s:
            held = version
            continue
        if t > until_s:
            break
        if held is not None and version < held:
            lost += held - version + 1
        held = version
    return lost


def _changes(trace: list) -> list[tuple[float, int]]:
    """(seconds, version) each time a device's model version changed."""
    changes, held = [], None
    for t, version, _ in trace:
        if version != held:
            changes.append((round(t, 2), version))
            held = version
    return changes


def plot(traces: dict[str, list], rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for device_id, trace in sorted(traces.items()):
        ax.step([t for t, _, _ in trace], [v for _, v, _ in trace], where="post", label=device_id, linewidth=1.2)
    for row in rows:
        ax.axvline(row["at_s"], color="grey", linestyle="--", linewidth=0.8)
        ax.annotate(f"{row['fault']}\n{row['streams_affected']} affected", (row["at_s"], ax.get_ylim()[1]),
                    fontsize=8, ha="left", va="top", xytext=(3, 0), textcoords="offset points")
    ax.set_xlabel("seconds since the devices started")
    ax.set_ylabel("model version held by the device")
    ax.set_title("Updates applied through faults (a fall would be updates lost)")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def make_videos(count: int, duration_s: float, cache: Path) -> list[Path]:
    from ams_ray.data.datasets import materialize_synthetic

    return [materialize_synthetic(seed=11 + k, duration_s=duration_s, height=128, width=256, cache_dir=cache,
                                  progress=False).path for k in range(count)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_loopback_only()
    args.out.mkdir(parents=True, exist_ok=True)
    state = args.out / "state"
    print(f"{args.devices} devices, faults: {', '.join(f'{f.kind}@{f.at_s:g}' for f in args.fault) or 'none'}",
          flush=True)
    videos = make_videos(args.videos, args.duration, args.out / "videos")
    try:
        url = start_service(args, state)
        devices = start_devices(url, state, args, videos)
        began = time.time()
        reports, threads = run_devices(devices)
        fired, traces = watch(devices, threads, args.fault, began, timeout_s=args.duration / args.speed + 900)
        end_s = time.time() - began
        rows = outcomes(fired, traces, {d: r.get("applied_wall", []) for d, r in reports.items()}, began, end_s)
        final, held = directory_status(), held_by_host()
    finally:
        stop_service()
    failed = {d: r["failure"] for d, r in reports.items() if r.get("failure")}
    summary = {"devices": args.devices, "completed": len(reports) - len(failed), "failed": len(failed),
               "failures": failed, "events": rows, "hosts_at_end": final["hosts"],
               "held_at_end": held, "directory_events": final["events"],
               "send_period_s": AmsConfig.for_profile("cpu").training.send_period_s,
               "updates_applied": {d: r.get("updates_applied", 0) for d, r in sorted(reports.items())},
               "versions": {d: _changes(trace) for d, trace in sorted(traces.items())},
               "wall_s": round(end_s, 1)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(traces, rows, args.out / "service_faults.png")
    for row in rows:
        resumed = "-" if row["resumed_s"] is None else f"{row['resumed_s']:.1f} s"
        print(f"{row['fault']:>18} at {row['at_s']:6.1f} s: {row['streams_affected']} streams affected, "
              f"the worst resumed after {resumed}, {row['updates_lost']} updates lost", flush=True)
    print(f"{summary['completed']}/{args.devices} devices completed; hosts at the end: {', '.join(final['hosts'])}; "
          f"wrote {args.out / 'summary.json'}", flush=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
