"""cluster.yaml (AWS) and cluster-local.yaml (on-prem) through Ray's own config validator.

No cloud here, so nothing is launched: `prepare_config` + `validate_config` are exactly what
`ray up` runs before it touches a provider.
"""

import copy
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_ray_accepts_the_cluster_file(name):
    validate_config(prepare_config(_load(name)))


def test_aws_roles_are_custom_resources_on_gpu_and_cpu_node_types():
    types = _load("cluster.yaml")["available_node_types"]
    assert types["server.gpu"]["resources"]["server"] > 0
    assert types["edge.cpu"]["resources"]["edge"] > 0
    assert types["server.gpu"]["node_config"]["InstanceType"].startswith(("g", "p"))  # a GPU family


def test_local_roles_are_given_by_the_start_commands():
    config = _load("cluster-local.yaml")
    assert '"edge"' in " ".join(config["head_start_ray_commands"])
    assert '"server"' in " ".join(config["worker_start_ray_commands"])


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_nodes_install_the_project_with_the_readme_makefile(name):
    commands = " ".join(_load(name)["setup_commands"] + _load(name)["head_setup_commands"])
    targets = re.findall(r"&& make ([\w./-]+)", commands)
    assert ".venv/.installed" in targets and "prometheus" in targets
    for target in targets:  # each must be a real Makefile target (dry run: nothing executes)
        subprocess.run(["make", "-n", "-C", str(ROOT), target], check=True, capture_output=True)


def test_a_head_node_type_that_does_not_exist_is_rejected():
    broken = copy.deepcopy(_load("cluster.yaml"))
    broken["head_node_type"] = "head.gpu"
    with pytest.raises(ValueError, match="head_node_type.*must be one of.*available_node_types"):
        validate_config(prepare_config(broken))


def test_a_misspelt_field_is_rejected_with_rays_schema_message():
    broken = copy.deepcopy(_load("cluster-local.yaml"))
    broken["setup_comands"] = broken.pop("setup_commands")
    with pytest.raises(jsonschema.ValidationError, match="'setup_comands' was unexpected"):
        validate_config(prepare_config(broken))
