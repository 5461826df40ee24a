import pytest

from ams_ray.service.device_registry import DeviceRegistry, RegistryError, TokenCheck


def test_tokens_are_kept_hashed_and_grant_their_device(tmp_path):
    registry = DeviceRegistry(tmp_path)
    token_a, token_b = registry.add("cam-a"), registry.add("cam-b")
    stored = (tmp_path / "devices.json").read_text()
    assert token_a not in stored and token_b not in stored
    check = TokenCheck(registry, refresh_s=0.0)
    assert check.device_for(token_a) == "cam-a"
    assert check.device_for(token_b) == "cam-b"
    assert check.device_for(token_a + "x") is None
    assert check.device_for("") is None


def test_a_revoked_token_stops_working_and_a_new_one_can_be_issued(tmp_path):
    registry = DeviceRegistry(tmp_path)
    old = registry.add("cam-a")
    check = TokenCheck(registry, refresh_s=0.0)
    assert check.device_for(old) == "cam-a"
    registry.revoke("cam-a")
    assert check.device_for(old) is None
    new = registry.add("cam-a")
    assert new != old and check.device_for(new) == "cam-a" and check.device_for(old) is None
    assert [d.revoked for d in registry.devices().values()] == [False]


def test_registry_refusals_say_what_to_do(tmp_path):
    registry = DeviceRegistry(tmp_path)
    registry.add("cam-a")
    with pytest.raises(RegistryError, match="revoke it first"):
        registry.add("cam-a")
    with pytest.raises(RegistryError, match="no device cam-z"):
        registry.revoke("cam-z")
    for bad in ("", "../etc", "a/b", "-x", "x" * 65):
        with pytest.raises(RegistryError, match="letters, digits"):
            registry.add(bad)
    (tmp_path / "devices.json").write_text("{not json")
    with pytest.raises(RegistryError, match="unreadable"):
        registry.devices()


def test_a_device_added_while_the_ingress_runs_is_admitted_at_once(tmp_path):
    registry = DeviceRegistry(tmp_path)
    check = TokenCheck(registry, refresh_s=3600.0, miss_refresh_s=0.0)
    assert check.device_for("nobody") is None  # the registry is now read and cached for an hour
    token = registry.add("cam-new")
    assert check.device_for(token) == "cam-new"


def test_a_token_never_looks_like_a_command_line_option(tmp_path):
    registry = DeviceRegistry(tmp_path)
    tokens = [registry.add(f"cam-{k}") for k in range(300)]  # url-safe base64 starts with "-" 1 time in 64
    assert all(t.startswith("ams_") and len(t) > 40 for t in tokens) and len(set(tokens)) == 300
