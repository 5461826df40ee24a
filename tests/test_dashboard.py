"""The Grafana dashboard and provisioning, checked against the metric catalogue (no Grafana here)."""

import json
import re

import yaml

from ams_ray.telemetry import CATALOGUE, exported_series
from monitoring import dashboard

METRIC = re.compile(r"\bray_[a-z0-9_]+")


def test_committed_dashboard_is_what_the_builder_writes():
    assert json.loads(dashboard.DASHBOARD_PATH.read_text()) == dashboard.build(), \
        "run `python -m monitoring.dashboard` after changing monitoring/dashboard.py"


def test_every_panel_query_names_only_exported_metrics():
    built = dashboard.build()
    exprs = dashboard.queries(built) + [v["definition"] for v in built["templating"]["list"]]
    named = {m for e in exprs for m in METRIC.findall(e)}
    assert named, "the dashboard has no queries"
    assert named <= exported_series(), f"not exported: {sorted(named - exported_series())}"


def test_every_exported_metric_is_on_the_dashboard():
    named = {m for e in dashboard.queries(dashboard.build()) for m in METRIC.findall(e)}
    missing = [m.name for m in CATALOGUE if not set(m.series_names) & named]
    assert missing == []


def test_per_stream_row_is_driven_by_the_stream_variable():
    built = dashboard.build()
    assert [v["name"] for v in built["templating"]["list"]] == ["stream"]
    rows = [i for i, p in enumerate(built["panels"]) if p["type"] == "row"]
    assert [built["panels"][i]["title"] for i in rows] == ["Fleet overview", "Per stream ($stream)"]
    per_stream = built["panels"][rows[1] + 1:]
    assert per_stream and all('stream=~"$stream"' in t["expr"] for p in per_stream for t in p["targets"])


def test_layout_and_datasource_match_the_provisioning():
    built = dashboard.build()
    ids = [p["id"] for p in built["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in built["panels"])
    source = yaml.safe_load((dashboard.DASHBOARD_PATH.parents[1] / "provisioning" / "datasources" /
                             "prometheus.yml").read_text())["datasources"][0]
    assert {p["datasource"]["uid"] for p in built["panels"] if p["type"] != "row"} == {source["uid"]}
    provider = yaml.safe_load((dashboard.DASHBOARD_PATH.parents[1] / "provisioning" / "dashboards" /
                               "ams-ray.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "${AMS_RAY_DASHBOARDS}"
