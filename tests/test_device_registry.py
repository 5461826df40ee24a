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


def _add_many(args: tuple[str, str, int]) -> list[str]:
    store, prefix, count = args
    registry = DeviceRegistry(store)
    return [registry.add(f"{prefix}-{k}") for k in range(count)]


def test_concurrent_adds_and_revokes_from_several_processes_lose_no_device(tmp_path):
    """Four processes add 15 devices each while this one revokes: every change survives.
    (fsspec's memory:// store lives in one process; the object-store path is the next test.)"""
    import multiprocessing

    registry = DeviceRegistry(tmp_path)
    registry.add("old-0")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pending = pool.map_async(_add_many, [(str(tmp_path), f"p{n}", 15) for n in range(4)])
        registry.revoke("old-0")
        tokens = [t for batch in pending.get(timeout=300) for t in batch]
    devices = registry.devices()
    assert len(devices) == 61 and devices["old-0"].revoked
    check = TokenCheck(registry)
    assert {check.device_for(t) for t in tokens} == {f"p{n}-{k}" for n in range(4) for k in range(15)}


def test_an_object_store_change_starts_over_when_another_writer_got_in_between(monkeypatch):
    import uuid

    url = f"memory://ams-{uuid.uuid4().hex}/state"
    registry, rival = DeviceRegistry(url), DeviceRegistry(url)
    reads = []
    original = DeviceRegistry._read

    def read_with_a_rival(self):  # the rival adds a device between this change's read and its write
        reads.append(1)
        if len(reads) == 2:
            rival.add("cam-rival")
        return original(self)

    monkeypatch.setattr(DeviceRegistry, "_read", read_with_a_rival)
    registry.add("cam-mine")
    monkeypatch.setattr(DeviceRegistry, "_read", original)
    assert set(registry.devices()) == {"cam-rival", "cam-mine"}
