import pytest

from ams_ray.service.checkpoint_store import CheckpointError, CheckpointStore


@pytest.mark.parametrize("as_url", [False, True])
def test_objects_are_replaced_whole_and_leave_no_temporary_files(tmp_path, as_url):
    store = CheckpointStore(f"file://{tmp_path}" if as_url else tmp_path)
    assert store.get("cam-1", "a") is None and store.listing("cam-1") == {}
    store.put("cam-1", "a", b"first")
    store.put("cam-1", "a", b"second")
    store.put("cam-1", "b", b"xyz")
    assert store.get("cam-1", "a") == b"second" and store.get("cam-2", "a") is None
    assert store.listing("cam-1") == {"a": 6, "b": 3}
    store.remove("cam-1", ["a", "never-there"])
    assert sorted(p.name for p in (tmp_path / "cam-1").iterdir()) == ["b"]


def test_fsspec_memory_store_stands_for_an_object_store():
    store = CheckpointStore("memory://ams-test-bucket/run")
    store.put("cam-1", "seg", b"state")
    assert store.get("cam-1", "seg") == b"state" and store.listing("cam-1") == {"seg": 5} and not store.local


def test_an_unwritable_store_names_itself_and_the_fix(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    with pytest.raises(CheckpointError, match=r"cannot write the checkpoint of cam-1 to .*not-a-dir.*--checkpoint-store"):
        CheckpointStore(blocker).put("cam-1", "seg", b"x")


def test_stream_ids_cannot_escape_the_store(tmp_path):
    with pytest.raises(ValueError, match="cannot name a checkpoint"):
        CheckpointStore(tmp_path).put("../etc", "seg", b"x")


def test_an_unknown_scheme_says_what_to_install():
    with pytest.raises(CheckpointError, match="install the fsspec backend"):
        CheckpointStore("nosuchscheme://bucket/x")
