import pytest

from ams_ray.service.checkpoint_store import CheckpointError, CheckpointStore


@pytest.mark.parametrize("as_url", [False, True])
def test_save_replaces_the_last_checkpoint_and_leaves_no_temporary_files(tmp_path, as_url):
    store = CheckpointStore(f"file://{tmp_path}" if as_url else tmp_path)
    assert store.load("cam-1") is None
    store.save("cam-1", b"first")
    store.save("cam-1", b"second")
    assert store.load("cam-1") == b"second" and store.load("cam-2") is None
    assert [p.name for p in (tmp_path / "cam-1").iterdir()] == ["state.ams"]


def test_fsspec_memory_store_stands_for_an_object_store():
    store = CheckpointStore("memory://ams-test-bucket/run")
    store.save("cam-1", b"state")
    assert store.load("cam-1") == b"state" and not store.local


def test_an_unwritable_store_names_itself_and_the_fix(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    with pytest.raises(CheckpointError, match=r"cannot write the checkpoint of cam-1 to .*not-a-dir.*--checkpoint-store"):
        CheckpointStore(blocker).save("cam-1", b"x")


def test_stream_ids_cannot_escape_the_store(tmp_path):
    with pytest.raises(ValueError, match="cannot name a checkpoint"):
        CheckpointStore(tmp_path).save("../etc", b"x")


def test_an_unknown_scheme_says_what_to_install():
    with pytest.raises(CheckpointError, match="install the fsspec backend"):
        CheckpointStore("nosuchscheme://bucket/x")
