"""kdlab.cache: a teacher is trained once and then loaded; its key holds everything that made it; a damaged or
renamed file is refused with a message; two processes asking at once train it once."""
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kdlab.cache
import kdlab.train
from kdlab.cache import CacheMismatchError, get_teacher, teacher_key, teacher_path
from kdlab.data import get_data
from kdlab.io import CheckpointError
from kdlab.recipe import Recipe

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_train_worker.py")
RECIPE = Recipe(epochs=2, batch_size=50, lr=0.05, schedule="onecycle")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one intra-op thread; `data` is there too


@pytest.fixture(scope="module")
def cached(data, tmp_path_factory):
    """A teacher trained through get_teacher into a fresh KDLAB_HOME; fit is counted and its result kept."""
    home = tmp_path_factory.mktemp("home")
    calls = []
    real_fit = kdlab.cache.fit

    def counting_fit(model, *a, **kw):
        history = real_fit(model, *a, **kw)
        calls.append(copy.deepcopy(model.state_dict()))
        return history

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDLAB_HOME", str(home))
        mp.setattr(kdlab.cache, "fit", counting_fit)
        teacher = get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False, verbose=False)
    path = teacher_path(teacher_key("resnet8", data, RECIPE, 0, "test"), home)
    return {"home": home, "teacher": teacher, "path": path, "calls": calls}


def no_training(*a, **kw):
    raise AssertionError("the teacher was trained again instead of being loaded from the cache")


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k].cpu(), b[k].cpu())] == []


def test_teacher_is_trained_once_then_loaded(cached, data, monkeypatch, capsys):
    assert len(cached["calls"]) == 1
    path = cached["path"]
    assert path.parent == cached["home"] / "teachers" and path.is_file()
    assert path.name.startswith("resnet8-cifar10-test-seed0-")
    # no partial checkpoint or temporary file left; the lock file may stay
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, path.with_suffix(".lock").name])
    assert_same_weights(cached["teacher"].state_dict(), cached["calls"][0])

    monkeypatch.setenv("KDLAB_HOME", str(cached["home"]))
    monkeypatch.setattr(kdlab.cache, "fit", no_training)
    again = get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False)
    assert "loaded from cache" in capsys.readouterr().out
    assert_same_weights(again.state_dict(), cached["calls"][0])
    assert not again.training and not any(p.requires_grad for p in again.parameters())
    info = again.cache_info
    assert info["path"] == str(path) and info["key"]["seed"] == 0 and len(info["history"]) == RECIPE.epochs
    assert 0 <= info["metrics"]["acc"] <= 1


def test_key_and_path_change_with_everything_that_makes_a_teacher(data, monkeypatch, tmp_path):
    base = teacher_key("resnet8", data, RECIPE, 0, "test")
    assert teacher_key("resnet8", data, RECIPE, 0, "test") == base
    other_data = get_data("cifar10", train_size=250, val_size=100, test_size=200, device="cpu")
    variants = {
        "arch": teacher_key("resnet14", data, RECIPE, 0, "test"),
        "lr": teacher_key("resnet8", data, Recipe(epochs=2, batch_size=50, lr=0.1, schedule="onecycle"), 0, "test"),
        "epochs": teacher_key("resnet8", data, Recipe(epochs=3, batch_size=50, lr=0.05, schedule="onecycle"), 0,
                              "test"),
        "extra": teacher_key("resnet8", data, Recipe(epochs=2, batch_size=50, lr=0.05, schedule="onecycle",
                                                     extra={"note": 1}), 0, "test"),
        "seed": teacher_key("resnet8", data, RECIPE, 1, "test"),
        "scale": teacher_key("resnet8", data, RECIPE, 0, "smoke"),
        "no scale": teacher_key("resnet8", data, RECIPE, 0, None),
        "train_size": teacher_key("resnet8", other_data, RECIPE, 0, "test"),
    }
    monkeypatch.setattr(kdlab.cache, "RECIPE_VERSION", kdlab.cache.RECIPE_VERSION + 1)
    variants["recipe_version"] = teacher_key("resnet8", data, RECIPE, 0, "test")
    paths = {name: teacher_path(key, tmp_path) for name, key in variants.items()}
    paths["base"] = teacher_path(base, tmp_path)
    assert len(set(paths.values())) == len(paths), paths
    assert all(p.parent == tmp_path / "teachers" for p in paths.values())
    assert paths["no scale"].name.startswith("resnet8-cifar10-custom-seed0-")
    monkeypatch.setenv("KDLAB_HOME", str(tmp_path / "elsewhere"))
    assert teacher_path(base) == tmp_path / "elsewhere" / "teachers" / paths["base"].name


def _tamper_key(blob):
    key = json.loads(blob["key"])
    key["recipe"]["lr"] = 0.1
    blob["key"] = json.dumps(key)


def _tamper_weights(blob):
    name = next(k for k, v in blob["state_dict"].items() if v.is_floating_point())
    blob["state_dict"][name] = blob["state_dict"][name] + 1e-3


@pytest.mark.parametrize("damage, error, message", [
    ("key", CacheMismatchError, r"different key than its name says.*Delete the file"),
    ("weights", CacheMismatchError, r"do not match their recorded digest.*Delete it"),
    ("truncated", CheckpointError, r"truncated or corrupt.*Delete it"),
])
def test_damaged_cache_file_is_refused(cached, data, monkeypatch, tmp_path, damage, error, message):
    home = tmp_path / "home"
    path = home / "teachers" / cached["path"].name
    path.parent.mkdir(parents=True)
    shutil.copy(cached["path"], path)
    if damage == "truncated":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) * 2 // 3])
    else:
        blob = torch.load(path, weights_only=True)
        (_tamper_key if damage == "key" else _tamper_weights)(blob)
        torch.save(blob, path)
    monkeypatch.setenv("KDLAB_HOME", str(home))
    monkeypatch.setattr(kdlab.cache, "fit", no_training)
    with pytest.raises(error, match=message) as err:
        get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False, verbose=False)
    assert str(path) in str(err.value)
    assert path.exists()  # refused, not silently replaced


def test_interrupted_teacher_training_resumes_from_its_partial_checkpoint(cached, data, monkeypatch, tmp_path,
                                                                          capsys):
    monkeypatch.setenv("KDLAB_HOME", str(tmp_path))
    real_step = kdlab.train.train_step
    steps = []

    def interrupted_step(*a, **kw):
        steps.append(1)
        if len(steps) == 6:  # epoch 2, step 2
            raise KeyboardInterrupt
        return real_step(*a, **kw)

    monkeypatch.setattr(kdlab.train, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False)
    path = tmp_path / "teachers" / cached["path"].name
    partial = path.with_suffix(".partial.pt")
    assert not path.exists() and partial.exists()
    monkeypatch.setattr(kdlab.train, "train_step", real_step)
    capsys.readouterr()
    teacher = get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False)
    assert f"resuming from {partial} after epoch 1/2" in capsys.readouterr().out
    assert path.exists() and not partial.exists()
    assert_same_weights(teacher.state_dict(), cached["calls"][0])


@pytest.mark.slow
def test_two_processes_train_the_teacher_once(data, tmp_path):
    data_file = tmp_path / "data.pt"
    torch.save(data, data_file)
    home, barrier = tmp_path / "home", tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "KDLAB_HOME": str(home), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(WORKER), "teacher", str(data_file), str(tmp_path / f"{n}.pt"),
                               "--barrier", str(barrier), "--name", n, "--peers", "2"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n in ("a", "b")]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=120)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
    both = "\n".join(outputs)
    assert both.count("training teacher") == 1, both
    # with the barrier the second nearly always finds the lock taken and waits (a very late one just loads)
    assert both.count("another process is training this teacher; waiting") <= 1, both
    assert both.count("loaded from cache") == 1, both
    a, b = (torch.load(tmp_path / f"{n}.pt", weights_only=True)["state"] for n in ("a", "b"))
    assert_same_weights(a, b)
    names = sorted(p.name for p in (home / "teachers").iterdir())
    assert len([n for n in names if n.endswith(".pt")]) == 1, names
    assert not [n for n in names if "partial" in n or n.endswith(".tmp") or n.startswith(".")], names


def test_unwritable_home_is_reported(data, monkeypatch, tmp_path):
    home = tmp_path / "readonly"
    home.mkdir()
    home.chmod(0o500)
    try:
        if os.access(home, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        monkeypatch.setenv("KDLAB_HOME", str(home))
        monkeypatch.setattr(kdlab.cache, "fit", no_training)
        with pytest.raises(CheckpointError, match="cannot write to .*KDLAB_HOME"):
            get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False)
    finally:
        home.chmod(0o700)


def test_home_under_a_regular_file_is_reported(data, monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("KDLAB_HOME", str(blocker / "home"))
    monkeypatch.setattr(kdlab.cache, "fit", no_training)
    with pytest.raises(CheckpointError, match=r"cannot write to .*a_file.*\(Not a directory\).*set KDLAB_HOME"):
        get_teacher("resnet8", data, RECIPE, seed=0, scale="test", progress=False)


def test_a_partial_teacher_from_another_run_says_to_delete_it(data, tmp_path, monkeypatch):
    key = teacher_key("resnet8", data, RECIPE, 0, "test")
    partial = teacher_path(key, tmp_path).with_suffix(".partial.pt")
    monkeypatch.setenv("KDLAB_PRECISION", "fp32")  # a partial left by a run in another precision
    kdlab.train.fit(kdlab.train.build("resnet8", data.num_classes, seed=0, device="cpu"), data,
                    Recipe(epochs=1, batch_size=50, lr=0.05, schedule="onecycle"), seed=0, checkpoint=partial,
                    eval_splits=(), progress=False, verbose=False)
    monkeypatch.setenv("KDLAB_PRECISION", "bf16")
    with pytest.raises(CacheMismatchError, match="partly trained teacher from a different run") as err:
        get_teacher("resnet8", data, RECIPE, seed=0, scale="test", home=tmp_path, progress=False, verbose=False)
    assert "precision" in str(err.value) and "Delete it" in str(err.value) and "resume=False" not in str(err.value)
