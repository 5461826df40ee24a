import pytest

from ams_ray.fleet.placement import Demand, PlacementError, check_fits, trainer_resources

ONE_GPU_NODE = [{"CPU": 2.0, "GPU": 1.0, "memory": 1e10}]


def test_fractional_trainers_pack_onto_one_gpu():
    res = trainer_resources(cluster_gpus=1, hosts=4, gpus_per_trainer=None, cpus_per_trainer=0.25)
    assert res == {"CPU": 0.25, "GPU": 0.25}
    check_fits([Demand("trainer", 4, res)], ONE_GPU_NODE)


def test_too_many_gpu_fractions_are_refused_with_what_was_asked_and_what_exists():
    with pytest.raises(PlacementError, match=r"asked for 2 GPU in all \(8 trainers x 0.25 GPU\) but the cluster has 1"):
        check_fits([Demand("trainer", 8, {"CPU": 0.1, "GPU": 0.25})], ONE_GPU_NODE)


def test_gpu_request_on_a_cpu_only_cluster_is_refused():
    res = trainer_resources(cluster_gpus=0, hosts=2, gpus_per_trainer=0.5, cpus_per_trainer=0.5)
    with pytest.raises(PlacementError, match="no node can hold one trainer"):
        check_fits([Demand("trainer", 2, res)], [{"CPU": 2.0}])


def test_cpu_only_cluster_gets_cpu_fractions_and_role_resources():
    res = trainer_resources(cluster_gpus=0, hosts=32, gpus_per_trainer=None, cpus_per_trainer=0.05,
                            role_resource="server")
    assert res == {"CPU": 0.05, "server": 0.001}
    with pytest.raises(PlacementError, match="no node can hold one trainer"):
        check_fits([Demand("trainer", 1, res)], [{"CPU": 2.0, "edge": 4.0}])
