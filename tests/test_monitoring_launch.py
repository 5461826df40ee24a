"""The Prometheus configs the launcher writes, checked by Prometheus's own promtool."""

import shutil
import subprocess

import pytest
import yaml

from monitoring.launch import PROMETHEUS_TEMPLATE, RAY_SD_FILE, render_prometheus_config


def _promtool_accepts(path) -> None:
    assert shutil.which("promtool"), "promtool ships with Debian's prometheus package: run `make test`"
    proc = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shipped_config_reads_rays_discovery_file():
    config = yaml.safe_load(PROMETHEUS_TEMPLATE.read_text())
    assert config["scrape_configs"][0]["file_sd_configs"][0]["files"] == [str(RAY_SD_FILE)]
    _promtool_accepts(PROMETHEUS_TEMPLATE)


def test_static_targets_replace_discovery(tmp_path):
    path = tmp_path / "prometheus.yml"
    path.write_text(render_prometheus_config("2s", targets=["127.0.0.1:8080", "127.0.0.3:8080"]))
    config = yaml.safe_load(path.read_text())
    job = config["scrape_configs"][0]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080", "127.0.0.3:8080"]
    assert "file_sd_configs" not in job and config["global"]["scrape_interval"] == "2s"
    _promtool_accepts(path)


def test_another_discovery_file(tmp_path):
    sd = tmp_path / "session" / "prom_metrics_service_discovery.json"
    config = yaml.safe_load(render_prometheus_config("5s", sd_file=sd))
    assert config["scrape_configs"][0]["file_sd_configs"][0]["files"] == [str(sd)]


def test_a_missing_prometheus_binary_says_how_to_install_it(tmp_path, monkeypatch):
    from monitoring import launch

    monkeypatch.setattr(launch.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install prometheus"):
        launch.start_prometheus(tmp_path)

