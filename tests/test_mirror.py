"""kdlab.mirror: a course's teachers, exported once with a manifest and taken by learners from a folder or a web
address on 127.0.0.1, checked by digest before use; a wrong digest, a missing entry or an unreachable mirror is
said in one line, nothing of it is loaded, and the teacher is trained here instead."""
import functools
import http.server
import json
import shutil
import socket
import threading
from pathlib import Path

import pytest
import torch

import kdlab.cache
from kdlab.__main__ import main
from kdlab.cache import export_teachers, get_teacher, teacher_key, teacher_path
from kdlab.mirror import MANIFEST, sha256_of
from kdlab.recipe import Recipe
from kdlab.train import state_digest

RECIPE = Recipe(epochs=1, batch_size=50, lr=0.05, schedule="onecycle")

pytestmark = pytest.mark.usefixtures("one_thread")


class Trained(Exception):
    """Raised by a stand-in for fit: the teacher would have been trained here."""


def refuse_training(*a, **kw):
    raise Trained


@pytest.fixture(scope="module")
def course(data, tmp_path_factory):
    """A tutor's cache with one trained teacher, exported into a folder."""
    home = tmp_path_factory.mktemp("tutor")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDLAB_HOME", str(home))
        mp.delenv("KDLAB_TEACHERS", raising=False)
        teacher = get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False, verbose=False)
        folder = tmp_path_factory.mktemp("share") / "teachers"
        entries = export_teachers(folder)
    return {"home": home, "folder": folder, "entries": entries, "teacher": teacher,
            "key": teacher_key("resnet8", data, RECIPE, 0, "test")}


@pytest.fixture
def learner(tmp_path, monkeypatch):
    """A learner with an empty cache, who must never train the teacher the mirror holds."""
    home = tmp_path / "learner"
    monkeypatch.setenv("KDLAB_HOME", str(home))
    monkeypatch.setattr(kdlab.cache, "fit", refuse_training)
    return home


def copy_of(course, tmp_path) -> Path:
    folder = tmp_path / "mirror"
    shutil.copytree(course["folder"], folder)
    return folder


@pytest.fixture
def served():
    """Serves a folder on 127.0.0.1 over HTTP; yields a function folder -> base address."""
    servers = []

    def serve(folder):
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/teachers/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def translate_path(self, path):  # serve the folder under /teachers/, as a course web page might
        return super().translate_path(path.removeprefix("/teachers"))

    def log_message(self, *args):
        pass


def test_export_writes_each_teacher_with_its_key_digest_and_accuracy(course):
    folder, [entry] = course["folder"], course["entries"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, entry["file"]])
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["format"] == 1 and manifest["teachers"] == [entry]
    assert entry["key"] == course["key"]
    assert entry["file"] == teacher_path(course["key"], course["home"]).name
    assert entry["sha256"] == sha256_of(folder / entry["file"])
    assert entry["bytes"] == (folder / entry["file"]).stat().st_size
    assert entry["test_acc"] == course["teacher"].cache_info["metrics"]["acc"]
    assert entry["device"].startswith("cpu: ") and entry["commit"]  # a new teacher records what made it


def test_learner_takes_the_teacher_from_a_folder_without_training(course, data, learner, capsys, monkeypatch):
    monkeypatch.setenv("KDLAB_TEACHERS", str(course["folder"]))
    teacher = get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False)
    assert "taken from the mirror" in capsys.readouterr().out
    assert state_digest(teacher) == state_digest(course["teacher"])
    local = teacher_path(course["key"], learner)
    assert local.is_file() and teacher.cache_info["path"] == str(local)
    assert [p.name for p in local.parent.iterdir() if p.suffix != ".lock"] == [local.name]  # no temporary left
    # the next call loads the local copy and never asks the mirror again
    monkeypatch.setenv("KDLAB_TEACHERS", str(learner / "gone"))
    get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False)
    assert "loaded from cache" in capsys.readouterr().out


def test_learner_takes_the_teacher_over_http(course, data, learner, served, capsys, monkeypatch):
    monkeypatch.setenv("KDLAB_TEACHERS", served(course["folder"]))
    teacher = get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False, verbose=False)
    assert state_digest(teacher) == state_digest(course["teacher"])
    assert teacher_path(course["key"], learner).is_file()


def _flip_a_byte(path: Path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _edit_manifest(folder: Path, edit):
    manifest = json.loads((folder / MANIFEST).read_text())
    edit(manifest["teachers"][0])
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _other_teacher(folder: Path):
    """The file swapped for another teacher's (same architecture, other weights), the manifest made to match."""
    entry = json.loads((folder / MANIFEST).read_text())["teachers"][0]
    blob = torch.load(folder / entry["file"], weights_only=True)
    key = json.loads(blob["key"])
    key["seed"] = 7
    blob["key"] = json.dumps(key)
    torch.save(blob, folder / entry["file"])
    _edit_manifest(folder, lambda e: e.update(sha256=sha256_of(folder / e["file"]),
                                              bytes=(folder / e["file"]).stat().st_size))


@pytest.mark.parametrize("damage, said", [
    ("file altered", r"does not match the sha256 in its manifest"),
    ("file truncated", r"has \d+ bytes, its manifest says \d+"),
    ("no entry for this key", r"no teacher for this exact key .*nearest: recipe\.lr: stored 0\.1, wanted 0\.05"),
    ("file missing", r"cannot be read"),
    ("path in the manifest", r"names the file '\.\./outside\.pt', which is not a plain teacher file name"),
    ("manifest of another kind", r"is not a kdlab teacher manifest"),
    ("another teacher behind a matching digest", r"matches its manifest's sha256 but is not the teacher"),
    ("no such folder", r"is not a folder"),
])
def test_a_mirror_that_cannot_give_the_teacher_is_said_in_one_line_and_nothing_is_loaded(
        course, data, learner, tmp_path, capsys, monkeypatch, damage, said):
    folder = copy_of(course, tmp_path)
    name = course["entries"][0]["file"]
    if damage == "file altered":
        _flip_a_byte(folder / name)
    elif damage == "file truncated":
        (folder / name).write_bytes((folder / name).read_bytes()[:1000])
    elif damage == "no entry for this key":
        _edit_manifest(folder, lambda e: e["key"]["recipe"].update(lr=0.1))
    elif damage == "file missing":
        (folder / name).unlink()
    elif damage == "path in the manifest":
        (tmp_path / "outside.pt").write_bytes((folder / name).read_bytes())
        _edit_manifest(folder, lambda e: e.update(file="../outside.pt"))
    elif damage == "manifest of another kind":
        (folder / MANIFEST).write_text('{"teachers": "all of them"}')
    elif damage == "another teacher behind a matching digest":
        _other_teacher(folder)
    elif damage == "no such folder":
        folder = tmp_path / "not-mounted"
    monkeypatch.setenv("KDLAB_TEACHERS", str(folder))
    with pytest.raises(Trained):  # falls back to training here
        get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False, verbose=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if "mirror" in line]
    assert len(lines) == 1 and lines[0].endswith("training the teacher here instead"), lines
    assert __import__("re").search(said, lines[0]), lines[0]
    teachers = learner / "teachers"
    assert not [p for p in teachers.iterdir() if p.suffix != ".lock"]  # nothing downloaded stays


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_or_failing_web_mirror_falls_back_in_one_line(course, data, learner, served, tmp_path, capsys,
                                                                   monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    for address, said in ((f"http://127.0.0.1:{_closed_port()}/teachers", "cannot be reached"),
                          (served(empty), "answered 404")):
        monkeypatch.setenv("KDLAB_TEACHERS", address)
        with pytest.raises(Trained):
            get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False, verbose=False)
        out = capsys.readouterr().out.strip()
        assert "\n" not in out and said in out and address.rstrip("/") in out, out


def test_a_mirror_that_is_neither_folder_nor_web_address_is_refused_before_anything(data, learner, monkeypatch):
    monkeypatch.setenv("KDLAB_TEACHERS", "ftp://example.org/teachers")
    with pytest.raises(ValueError, match=r"a folder or an http\(s\):// address, not ftp://"):
        get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False, verbose=False)


def test_export_leaves_out_a_damaged_file_and_keeps_earlier_entries(course, data, tmp_path, capsys):
    home = tmp_path / "home"
    shutil.copytree(course["home"] / "teachers", home / "teachers")
    good = course["entries"][0]["file"]
    damaged = home / "teachers" / good.replace("seed0", "seed1")
    shutil.copy(home / "teachers" / good, damaged)  # named for another key than the one inside
    (home / "teachers" / "resnet8-x.partial.pt").write_bytes(b"half")
    folder = copy_of(course, tmp_path)
    earlier = dict(course["entries"][0], file="resnet14-cifar10-test-seed0-0123456789abcdef.pt")
    shutil.copy(folder / good, folder / earlier["file"])
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "teachers": manifest["teachers"] + [earlier]}))
    entries = export_teachers(folder, home)
    assert f"left out: {damaged.name}" in capsys.readouterr().out
    assert [e["file"] for e in entries] == sorted([good, earlier["file"]])
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, good, earlier["file"]])
    with pytest.raises(ValueError, match="the teacher cache itself"):
        export_teachers(home / "teachers", home)


def test_cli_lists_and_exports_and_says_what_a_learner_sets(course, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KDLAB_HOME", str(course["home"]))
    assert main(["teachers", "list"]) == 0
    out = capsys.readouterr().out
    assert "resnet8" in out and "cifar10" in out and course["entries"][0]["file"] in out
    assert main(["teachers", "export", str(tmp_path / "out")]) == 0
    assert f"KDLAB_TEACHERS={tmp_path / 'out'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["teachers"] == course["entries"]
    assert main(["teachers", "export"]) == 2
    assert "needs the folder to write" in capsys.readouterr().err
    monkeypatch.setenv("KDLAB_HOME", str(tmp_path / "empty"))
    assert main(["teachers", "list"]) == 0
    assert "no teachers in" in capsys.readouterr().out
