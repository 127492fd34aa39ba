"""kdlab.io: atomic writes (a crash mid-write keeps the previous file) and checked loads."""
import os

import pytest
import torch

from kdlab import io
from kdlab.io import CheckpointError, load_checked, save_atomic


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


def test_save_atomic_writes_a_loadable_file(tmp_path):
    target = tmp_path / "sub" / "dir" / "ck.pt"  # missing folders are made
    obj = {"epoch": 3, "w": torch.arange(6.0).reshape(2, 3), "history": [{"loss": 1.5}]}
    assert save_atomic(obj, target) == target
    back = load_checked(target)
    assert back["epoch"] == 3 and torch.equal(back["w"], obj["w"]) and back["history"] == [{"loss": 1.5}]
    assert leftovers(target.parent) == []
    save_atomic({"epoch": 4}, str(target))  # str paths; overwriting
    assert load_checked(target) == {"epoch": 4}


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_crash_mid_write_keeps_the_previous_file(tmp_path, monkeypatch, exc):
    target = tmp_path / "ck.pt"
    save_atomic({"epoch": 1, "w": torch.ones(1000)}, target)
    before = target.read_bytes()
    real_save = torch.save

    def half_then_crash(obj, f, *a, **kw):
        import io as pyio
        buf = pyio.BytesIO()
        real_save(obj, buf, *a, **kw)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        raise exc

    monkeypatch.setattr(io.torch, "save", half_then_crash)
    with pytest.raises(type(exc)):
        save_atomic({"epoch": 2, "w": torch.zeros(1000)}, target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    back = load_checked(target)
    assert back["epoch"] == 1 and torch.equal(back["w"], torch.ones(1000))
    assert leftovers(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["ck.pt"]


def test_truncated_file_raises_checkpoint_error_saying_to_delete_it(tmp_path):
    target = tmp_path / "ck.pt"
    save_atomic({"epoch": 1, "w": torch.ones(1000)}, target)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cached teacher .*ck\.pt is truncated or corrupt .*Delete it"):
        load_checked(target, "cached teacher")
    target.write_bytes(b"")
    with pytest.raises(CheckpointError, match="Delete it"):
        load_checked(target)


class NotAllowed:
    pass


def test_load_checked_refuses_pickled_code_and_reports_missing_files(tmp_path):
    target = tmp_path / "evil.pt"
    torch.save({"obj": NotAllowed()}, target)  # weights_only loading must not unpickle arbitrary objects
    with pytest.raises(CheckpointError):
        load_checked(target)
    with pytest.raises(FileNotFoundError):
        load_checked(tmp_path / "missing.pt")


def test_unwritable_target_gives_a_checkpoint_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot write to .*KDLAB_HOME"):
        save_atomic({"x": 1}, blocker / "sub" / "ck.pt")


def test_run_card_commit_of_a_copied_checkout(monkeypatch, tmp_path):
    """A copy without .git says so, or names the commit it was copied from when KDLAB_SOURCE_COMMIT is set."""
    import subprocess

    from kdlab import runcard

    class NoGit:
        stdout = ""

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: NoGit())
    monkeypatch.delenv("KDLAB_SOURCE_COMMIT", raising=False)
    assert runcard._git_commit() == "unknown (not a git checkout)"
    monkeypatch.setenv("KDLAB_SOURCE_COMMIT", "abc123def456")
    assert runcard._git_commit() == "abc123def456 (a copy of this commit, not a checkout)"


def test_a_full_disk_is_said_and_loses_nothing(tmp_path, monkeypatch):
    import errno

    import kdlab.io
    target = tmp_path / "run.pt"
    save_atomic({"epoch": 1}, target)

    def no_space(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(kdlab.io.torch, "save", no_space)
    with pytest.raises(CheckpointError, match="the disk is full"):
        save_atomic({"epoch": 2}, target)
    monkeypatch.undo()
    assert load_checked(target) == {"epoch": 1}  # the earlier save is intact
    assert list(tmp_path.glob(".*.tmp")) == []  # and no temporary file is left


def test_temporaries_of_a_killed_save_are_cleaned_up(tmp_path):
    import os
    import time
    target = tmp_path / "run.pt"
    old = tmp_path / ".run.pt.abc123.tmp"  # what a save killed mid-write leaves
    old.write_bytes(b"half")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    other = tmp_path / ".other.pt.abc.tmp"  # another file's: not ours to remove
    other.write_bytes(b"x")
    os.utime(other, (hour_ago, hour_ago))
    save_atomic({"epoch": 1}, target)
    assert not old.exists() and other.exists()


def test_a_temporary_renamed_by_a_concurrent_save_is_not_an_error(tmp_path, monkeypatch):
    """Two processes saving the same run (two notebooks sharing a cache): one lists the other's temporary
    file, which is renamed over the target before it can be looked at. The save must go on."""
    target = tmp_path / "run.pt"
    gone = tmp_path / ".run.pt.vanished.tmp"  # listed, then renamed away by the other process
    monkeypatch.setattr(io, "_stale_temporaries", lambda path: iter([gone]))
    save_atomic({"epoch": 1}, target)
    assert load_checked(target) == {"epoch": 1}


def test_an_unwritable_checkpoint_folder_fails_before_training(tmp_path):
    from kdlab.io import check_writable
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot write to"):
        check_writable(tmp_path / "a_file" / "runs")
