"""Files that are never half-written: every checkpoint and cache entry goes through `save_atomic`.

A write goes to a temporary file in the same folder, is flushed to disk, then renamed over the target with
`os.replace`, which is atomic on POSIX and Windows: a reader (or a run killed mid-write) sees the old file or
the new one, never a mixture.
"""
import errno
import fcntl
import glob
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: truncated, corrupt, or made by another run."""


def _stale_temporaries(path: Path):
    """Temporary files an earlier save of `path` left behind when its process was killed mid-write."""
    return path.parent.glob(f".{glob.escape(path.name)}.*.tmp")


def save_atomic(obj, path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in _stale_temporaries(path):  # only this file's: a save of it in another process finishes first
            try:
                if time.time() - old.stat().st_mtime > 600:
                    old.unlink(missing_ok=True)
            except FileNotFoundError:  # another process saving the same file renamed it since the listing
                pass
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise CheckpointError(f"cannot write to {path.parent} ({e.strerror}). Make it writable, or point "
                              f"KDLAB_HOME (checkpoints) / KDLAB_DATA (datasets) at a folder you can write.") from e
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private (0600); a shared teacher cache must be readable
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        full = isinstance(e, OSError) and e.errno == errno.ENOSPC or "No space left" in str(e)
        if full or "enforce fail at inline_container" in str(e):  # torch.save's own words for a failed write
            why = "the disk is full" if full else "writing failed, most often because the disk is full"
            raise CheckpointError(f"could not write {path}: {why} (nothing saved earlier was lost). Free space "
                                  f"there, or set KDLAB_HOME to a folder on another disk, and run the same call "
                                  f"again") from e
        raise
    return path


def check_writable(folder) -> None:
    """Fail before any work when checkpoints could not be written to `folder` (made if missing)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise CheckpointError(f"cannot write to {folder} ({e.strerror}). Make it writable, or point KDLAB_HOME "
                              f"(checkpoints) at a folder you can write: checked before training, so nothing is "
                              f"lost") from e


def load_checked(path, what: str = "checkpoint") -> dict:
    """torch.load with weights_only=True; a truncated or corrupt file raises CheckpointError saying what to do."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder, not a file; pass a file path such as "
                              f"{path / 'run.pt'}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise CheckpointError(f"{what} {path} is truncated or corrupt ({type(e).__name__}). Delete it and run the "
                              f"same call again: it starts that run (or trains that teacher) from scratch.") from e


def lock_path(path) -> Path:
    """The lock file beside `path` ("run.pt" -> "run.lock") that processes sharing it take while they write it."""
    return Path(path).with_suffix(".lock")


@contextmanager
def exclusive(path, waiting: str = "another process is writing it"):
    """Holds the lock on `path` (kdlab.io.lock_path) for the block: a second process (a notebook open twice, a
    sweep's jobs) waits here, saying so, and then finds what the first one saved. The lock dies with its process,
    so a killed run never leaves a stale one."""
    lock = lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        f = open(lock, "a")
    except OSError as e:
        raise CheckpointError(f"cannot write to {lock.parent} ({e.strerror}). Make it writable, or set "
                              f"KDLAB_HOME to a folder you can write.") from e
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{waiting}; waiting for it ({lock.name})")
            t0 = time.monotonic()
            fcntl.flock(f, fcntl.LOCK_EX)
            print(f"... done after {time.monotonic() - t0:.0f} s; loading its result")
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_locked(path) -> bool:
    """Whether another process holds `path`'s lock right now (it is training that run)."""
    lock = lock_path(path)
    try:
        with open(lock, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except OSError:  # no lock file: nobody has started it
        return False
