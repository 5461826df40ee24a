"""The layers in `pyproject.toml` hold, and a broken one fails with the import chain."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.source_tree import ROOT, copy_source

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_every_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_torch_in_the_wire_breaks_the_device_contract(tmp_path):
    """A copy of the tree whose wire imports torch: the device contract fails, naming the chain."""
    copy_source(tmp_path, with_assets=False)
    codec = tmp_path / "ams_ray" / "wire" / "codec.py"
    codec.write_text(codec.read_text() + "\nimport torch  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "ams_ray.device is not allowed to import torch" in result.stdout
    assert re.search(r"ams_ray\.device\.\w+ -> ams_ray\.wire\.codec", result.stdout), result.stdout
    assert "ams_ray.wire.codec -> torch" in result.stdout


def test_serve_imported_from_an_actor_breaks_the_one_way_contract(tmp_path):
    copy_source(tmp_path, with_assets=False)
    coordinator = tmp_path / "actors" / "coordinator.py"
    coordinator.write_text(coordinator.read_text() + "\nimport serve.teacher  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "actors.coordinator -> serve.teacher" in result.stdout
