"""A short multi-stream run scraped by a real Prometheus server (Debian's, on loopback).

Checks through Prometheus's HTTP API that every metric of the catalogue arrives with its
labels and values that agree with the run's own reports, and that every dashboard query
evaluates to data. `make test` installs Prometheus when it is missing.
"""

import json
import os
import shutil
import socket
import time
import urllib.parse
import urllib.request

import pytest

from ams_ray.telemetry import CATALOGUE
from monitoring import dashboard
from monitoring.launch import start_prometheus
from tests.ray_session import shutdown_ray

STREAMS = ("stream-520", "stream-521")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(url: str, expr: str, at: float) -> list[dict]:
    params = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=10) as reply:
        body = json.load(reply)
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def _by_stream(url: str, metric: str, at: float) -> dict[str, float]:
    rows = _query(url, f"sum by (stream) (last_over_time({metric}[10m]))", at)
    return {r["metric"]["stream"]: float(r["value"][1]) for r in rows}


@pytest.fixture(scope="module")
def scraped_run(tmp_path_factory, cache_dir):
    """(Prometheus URL, fleet result, end-of-run time): two streams, one refused packet."""
    assert shutil.which("prometheus"), "prometheus is not installed: run `make test`, which installs Debian's package"
    from actors.cluster import connect
    from ams_ray.fleet.plan import FleetConfig
    from serve.fleet import run_fleet

    shutdown_ray()
    os.environ["RAY_metrics_report_interval_ms"] = "1000"  # workers push metrics every second, not every 10
    metrics_port = _free_port()
    connect(None, num_cpus=4, metrics_export_port=metrics_port)
    prometheus = start_prometheus(tmp_path_factory.mktemp("prometheus"), port=_free_port(), scrape_interval="1s",
                                  targets=[f"127.0.0.1:{metrics_port}"])

    def corrupt_one_packet(edges, trainers):
        edges[STREAMS[0]].deliver.remote(STREAMS[0], b"AMSP-not-a-packet", time.time())

    last_progress = []

    try:
        result = run_fleet(FleetConfig(clients=2, duration_s=30.0, speed=3.0, cache_dir=cache_dir, seed_base=520,
                                       teacher_cpus=0.5, metrics_flush_s=5.0), on_started=corrupt_one_packet,
                           on_progress=lambda done, running: last_progress.append(time.time()))
        # The streams ended at the last progress call; the actors live on for metrics_flush_s,
        # long enough for their final push (every 1 s) and a scrape (every 1 s).
        settled = last_progress[-1] + 3.0
        time.sleep(max(0.0, settled + 1.0 - time.time()))
        yield prometheus.url, result, settled
    finally:
        prometheus.stop()
        shutdown_ray()
        os.environ.pop("RAY_metrics_report_interval_ms", None)


def test_every_catalogue_metric_arrives_with_its_labels(scraped_run):
    url, result, ended = scraped_run
    assert result.failed == {}
    for spec in CATALOGUE:
        series = spec.exported_name + ("_count" if spec.kind == "histogram" else "")
        rows = _query(url, f"last_over_time({series}[10m])", ended)
        assert rows, f"{series} never reached Prometheus"
        labels = {k: {r["metric"][k] for r in rows} for k in spec.tags}
        if "stream" in spec.tags:
            assert labels["stream"] == set(STREAMS), series
        if "deployment" in spec.tags:
            assert labels["deployment"] == {"Teacher"}, series
    errors = _query(url, "last_over_time(ray_ams_errors_total[10m])", ended)
    assert {(r["metric"]["component"], r["metric"]["kind"]) for r in errors} == {("edge", "rejected_packet")}


def test_counters_agree_with_the_run_reports(scraped_run):
    url, result, ended = scraped_run
    edges = {e["stream_id"]: e for e in result.edges}
    uplink = _by_stream(url, "ray_ams_stream_uplink_bytes_total", ended)
    downlink = _by_stream(url, "ray_ams_stream_downlink_bytes_total", ended)
    applied = _by_stream(url, "ray_ams_stream_updates_applied_total", ended)
    played = _by_stream(url, "ray_ams_stream_frames_played_total", ended)
    staleness = _by_stream(url, "ray_ams_stream_update_staleness_seconds_count", ended)
    logged = _by_stream(url, "ray_ams_stream_log_bytes_total", ended)
    for sid in STREAMS:
        assert 0 < logged[sid] <= 2 * (uplink[sid] + downlink[sid]), "the durable log costs about the wire"
        assert uplink[sid] == edges[sid]["uplink_bytes"]
        assert downlink[sid] == edges[sid]["downlink_bytes"]
        assert applied[sid] == edges[sid]["updates_applied"] >= 2
        assert played[sid] == edges[sid]["frames"] == 450
        assert staleness[sid] == len(edges[sid]["staleness_s"])
    assert edges[STREAMS[0]]["rejected_packets"] and not edges[STREAMS[1]]["rejected_packets"]
    rounds = _by_stream(url, "ray_ams_stream_training_duration_seconds_count", ended)
    assert rounds == {t["stream_id"]: t["rounds"] for t in result.trainers}
    assert _by_stream(url, 'ray_ams_stream_rounds_total{outcome="trained"}', ended) == rounds
    frames = _query(url, "sum(last_over_time(ray_ams_teacher_frames_total[10m]))", ended)
    batches = _query(url, "sum(last_over_time(ray_ams_teacher_batches_total[10m]))", ended)
    labelled = sum(len(t["teacher_batches"]) for t in result.trainers)
    scored = sum(e["teacher_evaluations"] for e in result.edges)  # frames edges sent to score against the teacher
    assert float(frames[0]["value"][1]) == labelled + scored
    assert 1 <= float(batches[0]["value"][1]) <= labelled


def test_gauges_hold_plausible_values(scraped_run):
    url, result, ended = scraped_run
    miou = _by_stream(url, "ray_ams_stream_miou_ratio", ended)
    pretrained = _by_stream(url, "ray_ams_stream_pretrained_miou_ratio", ended)
    rate = _by_stream(url, "ray_ams_stream_sampling_frames_per_second", ended)
    for sid in STREAMS:
        assert 0.0 < pretrained[sid] < 1.0 and 0.0 < miou[sid] < 1.0
        assert rate[sid] > 0
    # an instantaneous gauge: every request it counted was answered by the end of the run
    queued = _query(url, "sum(last_over_time(ray_ams_teacher_queued_requests[10m]))", ended)
    assert float(queued[0]["value"][1]) == 0


def test_every_dashboard_query_returns_data(scraped_run):
    url, _, ended = scraped_run
    empty = []
    for expr in dashboard.queries(dashboard.build()):
        live = expr.replace("$__rate_interval", "20s").replace("$stream", ".*")
        if not _query(url, live, ended):
            empty.append(expr)
    assert empty == []
