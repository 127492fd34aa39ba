"""Teachers, trained once and reused by every notebook: get-or-train, keyed by everything that made them.

    teacher = get_teacher("resnet20", data, scale.teacher_recipe, seed=0, scale=scale.name)

The key holds the architecture, the data (dataset, split sizes, which images), the scale's name, the recipe,
the seed and the recipe's code version (`kdlab.recipe.RECIPE_VERSION`). Its hash names the file under
`<KDLAB_HOME or data/checkpoints>/teachers/`; the key itself is stored inside and compared on load, together
with a digest of the weights, so a renamed, stale or damaged file is refused with a message, never used.

Two processes asking for the same teacher: the first takes an exclusive lock on `<file>.lock` and trains
(resumably, through a `.partial` checkpoint); the second waits for the lock, then loads what the first saved.
Files are loaded with `weights_only=True`.

A course can share its teachers: `export_teachers(folder)` (`python -m kdlab teachers export DIR`) copies the
cache with a manifest, and `KDLAB_TEACHERS=<folder or URL>` makes `get_teacher` take a teacher it lacks from
there, checked, before training it (kdlab.mirror).
"""
import hashlib
import json
import numbers
import re
import os
import shutil
from pathlib import Path

from kdlab import mirror
from kdlab.io import CheckpointError, exclusive, load_checked, lock_path, save_atomic
from kdlab.losses import CrossEntropy
from kdlab.models import canonical
from kdlab.paths import home_dir
from kdlab.recipe import RECIPE_VERSION, Recipe
from kdlab.runcard import made_by
from kdlab.sftn import SFTN, SFTNLoss
from kdlab.train import StaleCheckpointError, build, evaluate, fit, resolve_device, state_digest


class CacheMismatchError(CheckpointError):
    """A cache file whose key or weights are not what its name promises."""


_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_label(scale):
    """A scale label becomes part of a file name: a plain name, never a path."""
    if scale is None:
        return None
    if not isinstance(scale, str):
        raise TypeError(f"scale= is the scale's name, e.g. scale.name or 'laptop', got {type(scale).__name__}")
    if not _LABEL.fullmatch(scale) or ".." in scale:
        raise ValueError(f"scale={scale!r} is not a plain name (letters, digits, '_', '-', '.'; no '/' or '..'): it "
                         f"becomes part of the cached teacher's file name. Pass the scale's name, e.g. scale.name")
    return scale


def teacher_key(arch: str, data, recipe: Recipe, seed: int = 0, scale: str | None = None,
                sftn: dict | None = None) -> dict:
    arch, scale = canonical(arch), _check_label(scale)  # before any path is built from them
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    if sftn is not None:
        sftn = {**sftn, "student": canonical(_sftn_settings(sftn)["student"])}
    key = {"kind": "teacher", "arch": arch, "num_classes": data.num_classes, "data": data.fingerprint,
           "scale": scale, "recipe": recipe.to_dict(), "objective": repr(CrossEntropy()), "seed": seed,
           "recipe_version": RECIPE_VERSION}
    if sftn is not None:  # a student-friendly teacher: its student and loss settings made it too
        settings = _sftn_settings(sftn)
        key.update(kind="sftn-teacher", student=settings.pop("student"), objective=SFTNLoss.describe(**settings))
    return json.loads(json.dumps(key))


def _sftn_settings(sftn: dict) -> dict:
    allowed = {"student", "tau", "lambda_t", "lambda_kl", "lambda_ce"}
    if not isinstance(sftn, dict) or "student" not in sftn or set(sftn) - allowed:
        raise ValueError(f"sftn must be a dict with 'student' (the student architecture) and optionally "
                         f"{sorted(allowed - {'student'})}, got {sftn!r}")
    return dict(sftn)


def teacher_path(key: dict, home=None) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    kind = f"sftn-{key['student']}-" if key.get("kind") == "sftn-teacher" else ""
    name = f"{kind}{key['arch']}-{key['data']['dataset']}-{key['scale'] or 'custom'}-seed{key['seed']}-{digest}.pt"
    return Path(home or home_dir()) / "teachers" / name


def _key_differences(stored, wanted, prefix="") -> str:
    """The fields where two keys differ, e.g. "seed: stored 1, wanted 0" (the whole keys fill a screen)."""
    if not isinstance(stored, dict):
        return f"stored {stored!r}"
    out = []
    for k in sorted(set(stored) | set(wanted), key=str):
        a, b = stored.get(k), wanted.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out.append(_key_differences(a, b, f"{prefix}{k}."))
        elif a != b:
            out.append(f"{prefix}{k}: stored {a!r}, wanted {b!r}")
    return "; ".join(o for o in out if o)


def _mismatch(expected: dict, found: dict) -> str:
    """What differs between two state dicts, in a few words (torch's own message lists every tensor)."""
    parts = []
    for what, names in (("missing", [k for k in expected if k not in found]),
                        ("unexpected", [k for k in found if k not in expected]),
                        ("of another shape", [k for k in expected if k in found and hasattr(found[k], "shape")
                                              and found[k].shape != expected[k].shape])):
        if names:
            parts.append(f"{len(names)} tensors {what}, e.g. {names[0]!r}")
    return "; ".join(parts) or "the tensors do not load"


def _load(path: Path, key: dict, device):
    blob = load_checked(path, "cached teacher")
    missing = {"key", "state_dict", "weights", "metrics", "history", "trained_seconds"} - set(blob)
    if missing:
        raise CacheMismatchError(f"{path} is not a kdlab teacher file (it lacks {sorted(missing)}). Delete it "
                                 f"to retrain the teacher.")
    stored = json.loads(blob["key"])
    if stored != key:
        raise CacheMismatchError(f"{path} holds a teacher made with a different key than its name says "
                                 f"({_key_differences(stored, key)}). Delete the file to retrain it.")
    model = build(key["arch"], key["num_classes"], device=device)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        raise CacheMismatchError(f"{path}: the weights do not fit a {key['arch']} with {key['num_classes']} classes "
                                 f"({_mismatch(model.state_dict(), blob['state_dict'])}): the file was made for "
                                 f"another model. Delete the file to retrain the teacher.") from e
    if state_digest(model) != blob["weights"]:
        raise CacheMismatchError(f"{path}: the weights do not match their recorded digest (the file was altered "
                                 f"or damaged). Delete it to retrain the teacher.")
    model.eval().requires_grad_(False)
    model.cache_info = {"path": str(path), "key": key, "metrics": blob["metrics"], "history": blob["history"],
                        "trained_seconds": blob["trained_seconds"]}
    return model


def get_teacher(arch: str, data, recipe: Recipe, *, seed: int = 0, scale: str | None = None, home=None,
                device=None, progress: bool | None = None, verbose: bool = True, sftn: dict | None = None):
    """The cached teacher for this key, trained now (and cached) if there is none. Returned in eval mode with
    gradients off; `teacher.cache_info` holds its path, key, test metrics and training history.

    `sftn={"student": "resnet8", ...}` (optionally tau, lambda_t, lambda_kl, lambda_ce) trains a student-friendly
    teacher instead (`kdlab.sftn`: student branches during training, same recipe and seed); the file and the
    returned model hold the plain teacher, branches dropped, and the history logs the branch terms."""
    device = resolve_device(device if device is not None else data.device)
    key = teacher_key(arch, data, recipe, seed, scale, sftn)  # checks every name first
    arch, seed = key["arch"], key["seed"]
    path = teacher_path(key, home)
    with exclusive(path, "another process is training this teacher"):
        if path.exists():
            teacher = _load(path, key, device)
            if verbose:
                m = teacher.cache_info["metrics"]
                print(f"teacher {arch} loaded from cache ({path.name}): test acc {100 * m['acc']:.2f}%")
            return teacher
        if (where := mirror.source()) and _from_mirror(where, key, path, device):
            teacher = _load(path, key, device)
            if verbose:
                m = teacher.cache_info["metrics"]
                print(f"teacher {arch} taken from the mirror {where} ({path.name}): test acc {100 * m['acc']:.2f}%")
            return teacher
        what = f"student-friendly teacher {arch} (branches for {key['student']})" if sftn else f"teacher {arch}"
        if verbose:
            print(f"training {what} on {data.name} ({recipe.epochs} epochs, seed {seed}); cached as {path.name}")
        model = build(arch, data.num_classes, seed=seed, device=device)
        objective = None
        if sftn:
            settings = _sftn_settings(sftn)
            student = build(settings.pop("student"), data.num_classes, seed=seed, device=device)
            model = SFTN(model, student, image_size=data.train.images.shape[-1]).to(device)
            objective = SFTNLoss(model, **settings)
        partial = path.with_suffix(".partial.pt")
        try:
            history = fit(model, data, recipe, objective=objective, seed=seed, checkpoint=partial, progress=progress,
                          verbose=verbose, desc=what)
        except StaleCheckpointError as e:  # fit's advice (resume=False, another path) is not get_teacher's to take
            raise CacheMismatchError(f"{partial} is a partly trained teacher from a different run "
                                     f"({getattr(e, 'differences', e)}), e.g. another precision or data. Delete it "
                                     f"to train this teacher from the start.") from e
        if sftn:
            model = model.export_teacher()
        metrics = evaluate(model, data, "test")
        save_atomic({"key": json.dumps(key), "state_dict": model.state_dict(), "weights": state_digest(model),
                     "metrics": metrics, "history": history.to_dict("records"),
                     "trained_seconds": float(history["seconds"].sum()), "made_by": made_by(device)}, path)
        partial.unlink(missing_ok=True)
        lock_path(partial).unlink(missing_ok=True)  # fit's lock on it: only this teacher's lock holder uses it
        return _load(path, key, device)


def _from_mirror(where: str, key: dict, path: Path, device) -> bool:
    """Puts the mirror's teacher for exactly this key at `path` and says True, or says in one line why not (and
    leaves nothing of it behind): the caller then trains the teacher."""
    try:
        entries = mirror.read_manifest(where)
        entry = next((e for e in entries if e["key"] == key), None)
        if entry is None:
            near = [e for e in entries if all(e["key"].get(f) == key[f] for f in ("kind", "arch", "seed"))]
            why = f"; nearest: {_key_differences(near[0]['key'], key)}" if near else ""
            raise mirror.MirrorError(f"it has no teacher for this exact key ({path.name}{why})")
        tmp = mirror.download(where, entry, path.parent)
        try:
            _load(tmp, key, device)  # the key and weights inside, as for every cache file
        except CheckpointError as e:
            tmp.unlink(missing_ok=True)
            raise mirror.MirrorError(f"{entry['file']} matches its manifest's sha256 but is not the teacher the "
                                     f"entry says ({type(e).__name__}: its key, weights or format differ); not "
                                     f"loaded") from e
        os.replace(tmp, path)
        return True
    except mirror.MirrorError as e:
        print(f"teacher mirror {where}: {e}; training the teacher here instead")
        return False


def cached_teachers(home=None) -> list:
    """One entry per teacher in the cache that loads (its key matches its name and its weights their digest):
    file, key, sha256, bytes, test accuracy, training seconds, device and commit. A file that does not load is
    left out with a line saying why."""
    src, entries = Path(home or home_dir()) / "teachers", []
    files = sorted(p for p in src.glob("*.pt") if not p.name.endswith(".partial.pt")) if src.is_dir() else []
    for path in files:
        try:
            blob = load_checked(path, "cached teacher")
            key = json.loads(blob["key"])
            if teacher_path(key, home).name != path.name:
                raise CacheMismatchError(f"{path} is named for another key than the one inside")
            info = _load(path, key, "cpu").cache_info  # the weights' digest too
        except (CheckpointError, KeyError, TypeError, ValueError) as e:
            print(f"left out: {path.name}: {e}")
            continue
        unknown = "unknown (trained before kdlab recorded it)"
        who = blob.get("made_by", {})
        entries.append({"file": path.name, "key": key, "sha256": mirror.sha256_of(path),
                        "bytes": path.stat().st_size, "test_acc": info["metrics"]["acc"],
                        "trained_seconds": info["trained_seconds"], "device": who.get("device", unknown),
                        "commit": who.get("commit", unknown)})
    return entries


def export_teachers(folder, home=None) -> list:
    """Copies every teacher of the cache that loads into `folder` with `manifest.json` (kdlab.mirror) and returns
    the manifest's entries. A file exported before is overwritten; other entries of the folder's manifest are
    kept, so several machines can export into one folder."""
    src, folder = Path(home or home_dir()) / "teachers", Path(folder).expanduser()
    if folder.resolve() == src.resolve():
        raise ValueError(f"{folder} is the teacher cache itself; export to another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        old = mirror.read_manifest(str(folder)) if (folder / mirror.MANIFEST).exists() else []
    except mirror.MirrorError as e:
        raise ValueError(f"{folder} holds a {mirror.MANIFEST} kdlab cannot read ({e}); export to an empty "
                         f"folder") from e
    except OSError as e:
        raise CheckpointError(f"cannot write to {folder} ({e.strerror}); export to a folder you can write") from e
    entries = {e["file"]: e for e in old if (folder / str(e.get("file"))).is_file()}
    for entry in cached_teachers(home):
        tmp = folder / f".{entry['file']}.tmp"
        try:
            shutil.copyfile(src / entry["file"], tmp)
            if mirror.sha256_of(tmp) != entry["sha256"]:  # the cache file changed while it was copied
                raise CheckpointError(f"{entry['file']} changed while it was exported; run the export again")
            os.replace(tmp, folder / entry["file"])
        finally:
            tmp.unlink(missing_ok=True)
        entries[entry["file"]] = entry
    mirror.write_manifest(folder, list(entries.values()))
    return sorted(entries.values(), key=lambda e: e["file"])
