"""Teachers a course trains once: a folder or web address that holds cached teachers for everyone else.

    python -m kdlab teachers export /srv/course/teachers     # the tutor, after running the notebooks once
    export KDLAB_TEACHERS=/srv/course/teachers               # or https://example.org/course/teachers

An export is a folder of teacher files (the cache's own files, unchanged) and `manifest.json`, one entry per
file: its cache key, sha256 and size, test accuracy, and the device and commit that trained it. With
`KDLAB_TEACHERS` set, `get_teacher` looks up a teacher it does not have in the manifest by its exact key,
downloads the file, checks its size and sha256 against the entry and only then moves it into the local cache,
where the cache checks the key and the weights' digest as it does for every file. A missing entry, a wrong
digest or an unreachable mirror is said in one line and nothing of it is loaded: the teacher is trained here.

The manifest names files, never paths: a name with a '/' or '..' is refused before anything is read. Files are
loaded with `weights_only=True`, like every kdlab file.
"""
import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

MANIFEST = "manifest.json"
FORMAT = 1
TIMEOUT_SECONDS = 30
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.pt")


class MirrorError(Exception):
    """A teacher the mirror cannot give: said in one line, then the teacher is trained here."""


def source() -> str | None:
    """KDLAB_TEACHERS: None when unset; a folder or an http(s) address, else a ValueError saying what to set."""
    value = os.environ.get("KDLAB_TEACHERS", "").strip()
    if not value:
        return None
    scheme = urllib.parse.urlsplit(value).scheme.lower()
    if scheme in ("http", "https"):
        return value.rstrip("/")
    if "://" in value:
        raise ValueError(f"KDLAB_TEACHERS={value!r}: a teacher mirror is a folder or an http(s):// address, not "
                         f"{scheme}://; unset it to train teachers here")
    return str(Path(value).expanduser())


def _is_url(where: str) -> bool:
    return where.startswith(("http://", "https://"))


def _open(where: str, name: str):
    """A readable binary stream of `name` in the mirror; MirrorError if it is not there or cannot be reached."""
    if _is_url(where):
        url = f"{where}/{urllib.parse.quote(name)}"
        try:
            return urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS)
        except urllib.error.HTTPError as e:
            raise MirrorError(f"{url} answered {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            raise MirrorError(f"{where} cannot be reached ({getattr(e, 'reason', e)})") from e
    folder = Path(where)
    if not folder.is_dir():
        raise MirrorError(f"{where} is not a folder (is the course's share mounted?)")
    try:
        return open(folder / name, "rb")
    except OSError as e:
        raise MirrorError(f"{folder / name} cannot be read ({e.strerror})") from e


def read_manifest(where: str) -> list:
    """The mirror's entries; MirrorError when it cannot be reached or its manifest is not one kdlab wrote."""
    with _open(where, MANIFEST) as f:
        raw = f.read(64 << 20)
    try:
        manifest = json.loads(raw)
        if manifest.get("format") != FORMAT or not isinstance(manifest.get("teachers"), list):
            raise ValueError
    except (ValueError, AttributeError):
        raise MirrorError(f"{where}/{MANIFEST} is not a kdlab teacher manifest (format {FORMAT}); re-export it "
                          f"with 'python -m kdlab teachers export'") from None
    return [e for e in manifest["teachers"] if isinstance(e, dict) and isinstance(e.get("key"), dict)]


def download(where: str, entry: dict, folder: Path) -> Path:
    """The entry's file, copied into a temporary file in `folder` and checked against the entry's size and
    sha256; the caller moves it into place. MirrorError (and nothing left behind) when it does not match."""
    name = entry.get("file")
    if not isinstance(name, str) or not _FILE.fullmatch(name) or ".." in name:
        raise MirrorError(f"its manifest names the file {name!r}, which is not a plain teacher file name")
    size, digest = entry.get("bytes"), entry.get("sha256")
    if not isinstance(size, int) or not isinstance(digest, str):
        raise MirrorError(f"its manifest entry for {name} has no size or sha256; re-export it")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".download")
    tmp = Path(tmp)
    try:
        sha, got = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, _open(where, name) as f:
            while chunk := f.read(1 << 20):
                got += len(chunk)
                if got > size:
                    raise MirrorError(f"{name} is larger than the {size} bytes its manifest says; not loaded")
                sha.update(chunk)
                out.write(chunk)
        if got != size:
            raise MirrorError(f"{name} has {got} bytes, its manifest says {size}; not loaded")
        if sha.hexdigest() != digest:
            raise MirrorError(f"{name} does not match the sha256 in its manifest (altered or damaged); not loaded")
        return tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def write_manifest(folder: Path, entries: list) -> Path:
    """`folder/manifest.json`, written atomically (a learner reading it meanwhile sees the old one or the new)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{MANIFEST}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"format": FORMAT, "teachers": sorted(entries, key=lambda e: e["file"])}, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / MANIFEST)
    return folder / MANIFEST
