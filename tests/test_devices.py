"""`python -m serve.devices`, as an operator runs it."""

import json
import subprocess
import sys

from ams_ray.service.device_registry import DeviceRegistry, TokenCheck


def _devices(state, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serve.devices", "--state-dir", str(state), *args],
                          capture_output=True, text=True, timeout=60)


def test_add_list_revoke(tmp_path):
    added = _devices(tmp_path, "add", "cam-7")
    assert added.returncode == 0
    token = added.stdout.strip().splitlines()[-1]
    assert len(token) >= 40 and token not in (tmp_path / "devices.json").read_text()
    assert TokenCheck(DeviceRegistry(tmp_path)).device_for(token) == "cam-7"
    listed = _devices(tmp_path, "list")
    assert listed.stdout.startswith("cam-7\tactive") and token not in listed.stdout
    assert _devices(tmp_path, "revoke", "cam-7").returncode == 0
    assert "cam-7\trevoked" in _devices(tmp_path, "list").stdout
    assert TokenCheck(DeviceRegistry(tmp_path)).device_for(token) is None
    assert [d["revoked"] for d in json.loads((tmp_path / "devices.json").read_text())["devices"]] == [True]


def test_mistakes_are_one_error_line(tmp_path):
    for args in (("revoke", "nobody"), ("add", "../../etc")):
        result = _devices(tmp_path, *args)
        assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
