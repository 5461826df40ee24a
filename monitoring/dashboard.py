"""The ams-ray Grafana dashboard, built from code so its queries stay readable and checked.

    python -m monitoring.dashboard          # rewrites monitoring/grafana/dashboards/ams-ray.json

Two rows: the fleet overview (streams, mean gain, bandwidth per device, p95 staleness,
teacher throughput and batch, errors, overload: timeouts and shed work, training before
scoring at the teacher, the scheduler's rounds trained and let go) and a per-stream view selected by the `stream` template variable. Every query names only metrics of `ams_ray.telemetry` (a test checks).
Ray adds a `WorkerId` label to every series, so each query aggregates by the labels it
means (`stream`, `deployment`, ...) instead of relying on one series per stream.
"""

from __future__ import annotations

import json
from pathlib import Path

DASHBOARD_PATH = Path(__file__).parent / "grafana" / "dashboards" / "ams-ray.json"
DATASOURCE = {"type": "prometheus", "uid": "ams-prometheus"}  # provisioning/datasources/prometheus.yml
ONE_STREAM = 'stream=~"$stream"'
RATE = "$__rate_interval"
OVERLOAD_KINDS = "upload_timeout|poll_timeout|poll_failed|packet_resent|packet_superseded|shed_chunk|scoring_shed"


def _panel(title: str, targets: list[tuple[str, str]], x: int, y: int, w: int = 8, h: int = 7,
           kind: str = "timeseries", unit: str = "short", description: str = "") -> dict:
    return {
        "type": kind, "title": title, "description": description, "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                    for i, (expr, legend) in enumerate(targets)],
    }


def _row(title: str, y: int) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
            "panels": []}


def _p95(metric: str, by: str = "", selector: str = "") -> str:
    group = f"le{', ' + by if by else ''}"
    return f"histogram_quantile(0.95, sum by ({group}) (rate(ray_{metric}_bucket{{{selector}}}[{RATE}])))"


def fleet_panels(y: int) -> list[dict]:
    gain = "100 * (avg(ray_ams_stream_miou_ratio) - avg(ray_ams_stream_pretrained_miou_ratio))"
    return [
        _row("Fleet overview", y),
        _panel("Streams", [("count(count by (stream) (ray_ams_stream_miou_ratio))", "streams")], 0, y + 1, 4, 5,
               "stat", description="streams whose device reported an mIoU in the last scrape"),
        _panel("Mean mIoU gain (points)", [(gain, "gain")], 4, y + 1, 4, 5, "stat",
               description="mean over streams of the live model's mIoU minus the pretrained student's, last 10 s"),
        _panel("p95 update staleness", [(_p95("ams_stream_update_staleness_seconds"), "p95")], 8, y + 1, 4, 5,
               "stat", "s", "from the upload that made a round due until its packet was applied"),
        _panel("Teacher frames/s", [(f"sum(rate(ray_ams_teacher_frames_total[{RATE}]))", "frames/s")],
               12, y + 1, 4, 5, "stat"),
        _panel("Teacher mean batch", [(f"sum(rate(ray_ams_teacher_frames_total[{RATE}])) / "
                                       f"sum(rate(ray_ams_teacher_batches_total[{RATE}]))", "frames/batch")],
               16, y + 1, 4, 5, "stat"),
        _panel("Errors / min", [(f"60 * sum(rate(ray_ams_errors_total[{RATE}]))", "errors")], 20, y + 1, 4, 5,
               "stat"),
        _panel("mIoU: adapted vs pretrained (mean over streams)",
               [("100 * avg(ray_ams_stream_miou_ratio)", "adapted"),
                ("100 * avg(ray_ams_stream_pretrained_miou_ratio)", "pretrained")], 0, y + 6, 8),
        _panel("Bandwidth per device (mean)",
               [(f"8 * sum(rate(ray_ams_stream_uplink_bytes_total[{RATE}])) / "
                 "count(count by (stream) (ray_ams_stream_uplink_bytes_total))", "uplink"),
                (f"8 * sum(rate(ray_ams_stream_downlink_bytes_total[{RATE}])) / "
                 "count(count by (stream) (ray_ams_stream_downlink_bytes_total))", "downlink")],
               8, y + 6, 8, unit="bps"),
        _panel("Update staleness and device wait (p95)",
               [(_p95("ams_stream_update_staleness_seconds"), "staleness"),
                (_p95("ams_stream_turn_wait_seconds"), "turn wait"),
                (_p95("ams_stream_training_duration_seconds"), "training round")], 16, y + 6, 8, unit="s"),
        _panel("Teacher throughput and batch",
               [(f"sum by (deployment) (rate(ray_ams_teacher_frames_total[{RATE}]))", "{{deployment}} frames/s"),
                (f"sum by (deployment) (rate(ray_ams_teacher_frames_total[{RATE}])) / "
                 f"sum by (deployment) (rate(ray_ams_teacher_batches_total[{RATE}]))", "{{deployment}} mean batch")],
               0, y + 13, 8),
        _panel("Teacher latency and queue",
               [(_p95("ams_teacher_latency_seconds", "deployment"), "{{deployment}} p95 batch latency (s)"),
                ("sum by (deployment) (ray_ams_teacher_queued_requests)", "{{deployment}} queued requests")],
               8, y + 13, 8),
        _panel("Teacher batch size distribution",
               [(f"sum by (le) (rate(ray_ams_teacher_batch_size_bucket[{RATE}]))", "<= {{le}}")], 16, y + 13, 8,
               "bargauge"),
        _panel("Errors by kind",
               [(f"sum by (component, kind) (rate(ray_ams_errors_total[{RATE}]))", "{{component}}: {{kind}}")],
               0, y + 20, 8, 6, unit="ops"),
        _panel("Overload: lost time, shed work (per min)",
               [(f'60 * sum by (kind) (rate(ray_ams_errors_total{{kind=~"{OVERLOAD_KINDS}"}}[{RATE}])) '
                 "or vector(0)", "{{kind}}")], 8, y + 20, 8, 6,
               description="upload and poll timeouts, packets resent or superseded, chunks shed for a full "
                           "labelling backlog, scoring frames the teacher shed; 0 while the run keeps up"),
        _panel("Teacher: training before scoring",
               [(f"sum by (purpose) (rate(ray_ams_teacher_frames_total[{RATE}]))", "{{purpose}} frames/s"),
                ("sum by (purpose) (ray_ams_teacher_queued_requests)", "{{purpose}} waiting"),
                ("max(ray_ams_stream_label_backlog_chunks)", "largest stream backlog (chunks)")],
               16, y + 20, 8, 6,
               description="frames labelled per purpose, requests waiting at the replica, and the longest "
                           "labelling backlog of any stream (above 1, its device is told to sample less)"),
        _panel("Scheduler: rounds trained and let go (per min)",
               [(f"60 * sum by (outcome) (rate(ray_ams_stream_rounds_total[{RATE}]))", "{{outcome}}")],
               0, y + 26, 12, 6,
               description="due rounds the hosts trained, and those the scheduler let go: stepped_aside (still "
                           "waiting when the stream's next chunk came; gain only), hibernating (the model agrees "
                           "with the teacher) and outpaced (its rounds lately left it below the pretrained model); "
                           "reverted: devices sent the pretrained model"),
        _panel("Scheduler: what a round is worth",
               [("100 * avg(max by (stream) (ray_ams_stream_expected_gain_ratio))", "mean expected gain (points)"),
                ("100 * max(max by (stream) (ray_ams_stream_expected_gain_ratio))", "largest expected gain (points)"),
                ("count(max by (stream) (ray_ams_stream_round_priority_score) >= 1e6) or vector(0)",
                 "streams at their fairness floor")], 12, y + 26, 12, 6,
               description="expected gain: mIoU points a round could still win (distance of the device's model to "
                           "the teacher on its newest chunk, plus drift); the gain scheduler trains the most per "
                           "second first, except streams that reached their fairness floor"),
    ]


def stream_panels(y: int) -> list[dict]:
    return [
        _row("Per stream ($stream)", y),
        _panel("mIoU (last 10 s of video)",
               [(f"100 * max by (stream) (ray_ams_stream_miou_ratio{{{ONE_STREAM}}})", "{{stream}} adapted"),
                (f"100 * max by (stream) (ray_ams_stream_pretrained_miou_ratio{{{ONE_STREAM}}})",
                 "{{stream}} pretrained")], 0, y + 1, 12),
        _panel("Sampling rate (ASR)",
               [(f"max by (stream) (ray_ams_stream_sampling_frames_per_second{{{ONE_STREAM}}})", "{{stream}}")],
               12, y + 1, 6, unit="fps"),
        _panel("Frames played / uploaded per s",
               [(f"sum by (stream) (rate(ray_ams_stream_frames_played_total{{{ONE_STREAM}}}[{RATE}]))",
                 "{{stream}} played"),
                (f"sum by (stream) (rate(ray_ams_stream_frames_uploaded_total{{{ONE_STREAM}}}[{RATE}]))",
                 "{{stream}} uploaded")], 18, y + 1, 6),
        _panel("Bandwidth",
               [(f"8 * sum by (stream) (rate(ray_ams_stream_uplink_bytes_total{{{ONE_STREAM}}}[{RATE}]))",
                 "{{stream}} up"),
                (f"8 * sum by (stream) (rate(ray_ams_stream_downlink_bytes_total{{{ONE_STREAM}}}[{RATE}]))",
                 "{{stream}} down")], 0, y + 8, 8, unit="bps"),
        _panel("Updates applied per minute",
               [(f"60 * sum by (stream) (rate(ray_ams_stream_updates_applied_total{{{ONE_STREAM}}}[{RATE}]))",
                 "{{stream}}")], 8, y + 8, 8),
        _panel("Staleness, training, device wait (p95)",
               [(_p95("ams_stream_update_staleness_seconds", "stream", ONE_STREAM), "{{stream}} staleness"),
                (_p95("ams_stream_training_duration_seconds", "stream", ONE_STREAM), "{{stream}} training"),
                (_p95("ams_stream_turn_wait_seconds", "stream", ONE_STREAM), "{{stream}} turn wait")],
               16, y + 8, 8, unit="s"),
        _panel("Labelling backlog (chunks)",
               [(f"max by (stream) (ray_ams_stream_label_backlog_chunks{{{ONE_STREAM}}})", "{{stream}}")],
               0, y + 15, 8, description="chunks accepted and waiting for the teacher; above 1 the device is told "
                                         "a lower sampling rate, past the bound chunks are shed"),
        _panel("Durable log against the wire",
               [(f"8 * sum by (stream) (rate(ray_ams_stream_log_bytes_total{{{ONE_STREAM}}}[{RATE}]))",
                 "{{stream}} log writes"),
                (f"8 * sum by (stream) (rate(ray_ams_stream_uplink_bytes_total{{{ONE_STREAM}}}[{RATE}]) + "
                 f"rate(ray_ams_stream_downlink_bytes_total{{{ONE_STREAM}}}[{RATE}]))", "{{stream}} wire")],
               8, y + 15, 8, unit="bps",
               description="what the stream's log writes to the checkpoint store (each chunk once labelled, each "
                           "packet once applied) next to what crossed the wire; about equal"),
        _panel("Scheduler: expected gain, priority, rounds",
               [(f"100 * max by (stream) (ray_ams_stream_expected_gain_ratio{{{ONE_STREAM}}})",
                 "{{stream}} expected gain"),
                (f"max by (stream) (ray_ams_stream_round_priority_score{{{ONE_STREAM}}}) < 1e6", "{{stream}} priority"),
                (f'60 * sum by (stream) (rate(ray_ams_stream_rounds_total{{{ONE_STREAM}, outcome="trained"}}[{RATE}]))',
                 "{{stream}} rounds trained/min")], 16, y + 15, 8,
               description="what the scheduler ranked the stream's newest due round by (gain: expected points per "
                           "training second; at its fairness floor it goes first and leaves this plot)"),
    ]


def build() -> dict:
    panels = fleet_panels(0) + stream_panels(33)
    for i, panel in enumerate(panels, start=1):
        panel["id"] = i
    return {
        "uid": "ams-ray-fleet", "title": "ams-ray", "tags": ["ams-ray", "ray"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": [{
            "name": "stream", "label": "stream", "type": "query", "datasource": DATASOURCE,
            "query": {"query": "label_values(ray_ams_stream_miou_ratio, stream)", "refId": "streams"},
            "definition": "label_values(ray_ams_stream_miou_ratio, stream)",
            "multi": True, "includeAll": True, "current": {"text": "All", "value": "$__all"},
            "refresh": 2, "sort": 1,
        }]},
        "panels": panels,
    }


def queries(dashboard: dict) -> list[str]:
    """Every panel's PromQL expressions (template variables use Grafana's label_values instead)."""
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def main() -> None:
    DASHBOARD_PATH.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {DASHBOARD_PATH}")


if __name__ == "__main__":
    main()
