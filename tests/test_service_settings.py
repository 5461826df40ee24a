import pytest

from ams_ray.service.host_pool import ScaleRange
from ams_ray.service.settings import ServiceSettings, check_state_reachable


def test_scales_are_checked_when_the_settings_are_made():
    settings = ServiceSettings(hosts="2..6", ingress_replicas=2)
    assert settings.hosts == ScaleRange(2, 6) and settings.ingress_replicas == ScaleRange(2, 2)
    with pytest.raises(ValueError, match="hosts is N or MIN..MAX"):
        ServiceSettings(hosts="lots")


def test_a_local_state_directory_is_refused_on_a_cluster_of_several_nodes_with_the_fix():
    check_state_reachable("/home/ops/state", nodes=1, shared=False)
    check_state_reachable("s3://bucket/ams", nodes=3, shared=False)
    check_state_reachable("/mnt/nfs/ams", nodes=3, shared=True)
    for local in ("/home/ops/state", "file:///home/ops/state"):
        with pytest.raises(ValueError, match="3 nodes.*fsspec URL.*--shared-state"):
            check_state_reachable(local, nodes=3, shared=False)
