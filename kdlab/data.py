"""Datasets held on the device as uint8 and augmented there, one vectorised batch at a time.

Small CIFAR models are bound by data loading, not arithmetic (airbench trains to 94% in seconds this way),
so the whole dataset is copied to the device once (CIFAR-10 is 150 MB as uint8) and each batch is cropped,
flipped and normalised with a handful of tensor operations instead of 512 PIL calls.

    data = get_data("cifar10", train_size=5000, val_size=1000, device="cuda")
    for x, y, index in data.loader("train", batch_size=256, seed=0, epoch=3):
        ...

Sources, in order: an extracted folder in the published layout under `root` (read directly, without the
published checksums, so a re-encoded copy works), else the published archive downloaded by torchvision,
which verifies its checksum. With neither data nor network, a clear error says how to get the data: never a
synthetic stand-in.

| name              | folder under root        | download                                        |
| ----------------- | ------------------------ | ----------------------------------------------- |
| cifar10           | cifar-10-batches-py/     | torchvision.datasets.CIFAR10                    |
| cifar100          | cifar-100-python/        | torchvision.datasets.CIFAR100 (fine labels)     |
| tiny-imagenet-200 | tiny-imagenet-200/       | the CS231n zip (val labels from val_annotations) |
"""
import difflib
import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kdlab.paths import data_dir

DATASETS = ("cifar10", "cifar100", "tiny-imagenet-200")
_ALIASES = {"cifar-10": "cifar10", "cifar-100": "cifar100", "tinyimagenet": "tiny-imagenet-200",
            "tiny-imagenet": "tiny-imagenet-200", "tiny_imagenet": "tiny-imagenet-200"}
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


class DataError(RuntimeError):
    """Data that is missing, partial or corrupt; the message says what to do."""


def canonical_name(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        close = difflib.get_close_matches(key, DATASETS + tuple(_ALIASES), n=1)
        hint = f" Did you mean {_ALIASES.get(close[0], close[0])!r}?" if close else ""
        raise ValueError(f"unknown dataset {name!r}.{hint} kdlab knows: {', '.join(DATASETS)}.")
    return key


@dataclass
class ImageSet:
    """Images (N, C, H, W) uint8 and labels (N,) int64, on one device; `index` maps back to the source split."""
    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor = None

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"{len(self.images)} images but labels of shape {tuple(self.labels.shape)}")
        if self.index is None:
            self.index = torch.arange(len(self.images), device=self.images.device)

    def __len__(self):
        return len(self.labels)

    def subset(self, idx) -> "ImageSet":
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.images.device)
        return ImageSet(self.images[idx], self.labels[idx], self.index[idx])

    def to(self, device) -> "ImageSet":
        return ImageSet(self.images.to(device), self.labels.to(device), self.index.to(device))


# ---------------------------------------------------------------- reading the published layouts

class _BatchUnpickler(pickle.Unpickler):
    """Reads the published CIFAR batch files and nothing else: dicts, lists, strings, bytes, numbers and numpy
    arrays. A pickle naming any other callable (which plain `pickle.load` would call, running its code) is refused."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
                ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks to load {module}.{name}, which a published CIFAR batch file never "
                                     f"does (it could run code), so kdlab refused to read it")


def _unpickle(path: Path, what: str):
    if not path.is_file():
        raise DataError(f"{what}: {path} is missing. The folder is incomplete: delete {path.parent} and let "
                        f"kdlab download it again, or copy a complete extracted archive there.")
    try:
        with open(path, "rb") as f:
            return _BatchUnpickler(f, encoding="latin1").load()
    except Exception as e:  # truncated or corrupt pickles raise many types
        raise DataError(f"{what}: {path} is truncated or corrupt, or not a CIFAR batch file ({type(e).__name__}: {e}). "
                        f"Delete {path.parent} and download again.") from e


def _pixels(entry, path_for_errors) -> np.ndarray:
    """One batch's `data` as the published (N, 3072) uint8 rows, or an error that says what was found instead."""
    data = np.asarray(entry["data"])
    where = f"{path_for_errors}: the 'data' array"
    if data.ndim == 4 and data.shape[1:] == (32, 32, 3):
        raise DataError(f"{where} has shape {data.shape}, channels last (N, 32, 32, 3); the published layout is "
                        f"(N, 3072) in channel-first order. Re-save it as data.transpose(0, 3, 1, 2).reshape(N, 3072)")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{where} has shape {data.shape}; the published layout is (N, 3072): 3 x 32 x 32 uint8 "
                        f"pixels per row, channel first")
    if data.dtype != np.uint8:
        if not np.issubdtype(data.dtype, np.number):
            raise DataError(f"{where} holds {data.dtype} values, not pixels; the published files hold uint8")
        lo, hi = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
        if np.issubdtype(data.dtype, np.floating) and hi <= 1.0:
            raise DataError(f"{where} holds {data.dtype} values in [{lo:g}, {hi:g}]: pixels scaled to [0, 1]. The "
                            f"published files hold uint8 in [0, 255]: re-save it as (data * 255).round().astype(uint8)")
        if lo < 0 or hi > 255 or (np.issubdtype(data.dtype, np.floating) and not np.all(data == np.round(data))):
            raise DataError(f"{where} holds {data.dtype} values in [{lo:g}, {hi:g}], not whole pixel values in "
                            f"[0, 255]; the published files hold uint8")
        data = data.astype(np.uint8)
    return data


def _cifar_rows(entries, label_key, path_for_errors):
    rows = np.concatenate([_pixels(e, path_for_errors) for e in entries])
    labels = np.concatenate([np.asarray(e[label_key], dtype=np.int64) for e in entries])
    if len(rows) != len(labels):
        raise DataError(f"{path_for_errors}: {len(rows)} images but {len(labels)} labels; the files are corrupt. "
                        f"Delete {path_for_errors} and download again.")
    return torch.from_numpy(rows.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def _read_cifar(folder: Path, name: str):
    # A missing file or a truncated pickle is caught by _unpickle; sizes are not checked against the published
    # 50,000 / 10,000 so that small archives in the same layout (the tests' fakes) load too.
    if name == "cifar10":
        train_files, test_files = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
        meta_file, label_key, names_key = "batches.meta", "labels", "label_names"
    else:
        train_files, test_files = ["train"], ["test"]
        meta_file, label_key, names_key = "meta", "fine_labels", "fine_label_names"
    what = f"{name} in {folder}"
    classes = list(_unpickle(folder / meta_file, what)[names_key])
    train = _cifar_rows([_unpickle(folder / f, what) for f in train_files], label_key, folder)
    test = _cifar_rows([_unpickle(folder / f, what) for f in test_files], label_key, folder)
    return classes, train, test


def _decode_jpegs(paths):
    from PIL import Image
    out = np.empty((len(paths), 64, 64, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                out[i] = np.asarray(im.convert("RGB"))
        except Exception as e:
            raise DataError(f"tiny-imagenet-200: cannot decode {p} ({type(e).__name__}: {e}). The folder is "
                            f"corrupt: delete it and download again.") from e
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _read_tiny_imagenet(folder: Path):
    """The published layout: wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images + val_annotations.txt.

    Decoding 110,000 JPEGs takes a minute on two cores, so the decoded uint8 arrays are cached beside the
    folder, keyed by the list of files they came from.
    """
    what = f"tiny-imagenet-200 in {folder}"

    def partial(problem):
        return DataError(f"{what}: {problem}; the folder is partial or corrupt. Delete it and download again "
                         f"({TINY_IMAGENET_URL}).")

    for need in ("wnids.txt", "val/val_annotations.txt", "train", "val/images"):
        if not (folder / need).exists():
            raise partial(f"{need} is missing")
    wnids = (folder / "wnids.txt").read_text().split()
    if len(set(wnids)) != len(wnids) or not wnids:
        raise partial("wnids.txt is empty or has duplicates")
    label_of = {w: i for i, w in enumerate(wnids)}
    words = {}
    if (folder / "words.txt").exists():
        for line in (folder / "words.txt").read_text().splitlines():
            if "\t" in line:
                k, v = line.split("\t", 1)
                words[k] = v.split(",")[0].strip()
    classes = [words.get(w, w) for w in wnids]

    train_paths, train_labels = [], []
    for w in wnids:
        files = sorted((folder / "train" / w / "images").glob("*.JPEG"))
        if not files:
            raise partial(f"class {w} has no training images in train/{w}/images")
        train_paths += files
        train_labels += [label_of[w]] * len(files)
    val_paths, val_labels = [], []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        if parts[1] not in label_of:
            raise partial(f"val_annotations.txt names class {parts[1]!r}, which is not in wnids.txt")
        val_paths.append(folder / "val" / "images" / parts[0])
        val_labels.append(label_of[parts[1]])
    missing = [p for p in val_paths if not p.is_file()]
    if missing or not val_paths:
        raise partial(f"{len(missing)} of {len(val_paths)} val images listed in val_annotations.txt are missing "
                      f"(first: {missing[0] if missing else 'none listed'})")

    manifest = hashlib.sha256("\n".join(str(p.relative_to(folder)) for p in train_paths + val_paths).encode())
    cache = folder / f"kdlab-decoded-{manifest.hexdigest()[:16]}.pt"
    if cache.is_file():
        try:
            blob = torch.load(cache, weights_only=True)
            return classes, (blob["train_x"], blob["train_y"]), (blob["val_x"], blob["val_y"])
        except Exception:
            cache.unlink(missing_ok=True)  # a cache we wrote ourselves: rebuild it from the JPEGs
    train = (_decode_jpegs(train_paths), torch.tensor(train_labels))
    val = (_decode_jpegs(val_paths), torch.tensor(val_labels))
    from kdlab.io import save_atomic
    save_atomic({"train_x": train[0], "train_y": train[1], "val_x": val[0], "val_y": val[1]}, cache)
    return classes, train, val


_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "tiny-imagenet-200": "tiny-imagenet-200"}
_MARKERS = {"cifar10": "batches.meta", "cifar100": "meta", "tiny-imagenet-200": "wnids.txt"}


def _what_is_there(name, root) -> str:
    """Why the published folder was not found, when something is there that looks like it."""
    folder, marker = Path(root) / _FOLDERS[name], _MARKERS[name]
    if folder.is_symlink() and not folder.exists():
        return f"{folder} is a symbolic link to {os.readlink(folder)}, which does not exist"
    if (folder / folder.name / marker).exists():
        return f"it is nested one level too deep, in {folder / folder.name}: move that folder up into {root}"
    if folder.is_dir():
        return f"{folder} exists but has no {marker}: the copy or extraction is incomplete (delete it and copy again)"
    return f"{name} is not in {root}"


def _no_data_error(name, root, err):
    hint = _FOLDERS
    return DataError(
        f"{_what_is_there(name, root)}, and it could not be downloaded ({type(err).__name__}: {err}).\n"
        f"To fix: on a machine with internet, run `python -m kdlab data {name}` once; offline, copy the "
        f"extracted published folder `{hint[name]}/` into {root} (or point KDLAB_DATA at the folder that "
        f"holds it).")


def load(name: str = "cifar10", root=None, download: bool = True):
    """(classes, ImageSet train, ImageSet test) on the CPU, reading `root` (default: kdlab.paths.data_dir()).

    For Tiny ImageNet the labelled `val` split plays the role of the test set (the published test split has
    no labels)."""
    name = canonical_name(name)
    root = Path(root) if root is not None else data_dir()
    if root.exists() and not root.is_dir():
        raise DataError(f"the data folder {root} is a file, not a folder. Point KDLAB_DATA (or root=) at the "
                        f"folder that holds the datasets, or move the file away.")
    folder, marker = root / _FOLDERS[name], _MARKERS[name]
    if not (folder / marker).exists():
        if not download:
            raise _no_data_error(name, root, FileNotFoundError(f"no {folder / marker}"))
        _download(name, root)
    if name == "tiny-imagenet-200":
        classes, train, test = _read_tiny_imagenet(folder)
    else:
        classes, train, test = _read_cifar(folder, name)
    for split, (_, y) in (("train", train), ("test", test)):
        if y.min() < 0 or y.max() >= len(classes):
            raise DataError(f"{name}: {split} labels span [{int(y.min())}, {int(y.max())}] but there are "
                            f"{len(classes)} classes; the files are corrupt. Delete {folder} and download again.")
    return classes, ImageSet(*train), ImageSet(*test)


def _download(name, root):
    try:
        root.mkdir(parents=True, exist_ok=True)
        if name in ("cifar10", "cifar100"):
            import torchvision
            cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
            cls(str(root), train=True, download=True)  # verifies the published MD5
        else:
            from torchvision.datasets.utils import download_and_extract_archive
            download_and_extract_archive(TINY_IMAGENET_URL, str(root), md5=TINY_IMAGENET_MD5)
    except Exception as e:
        raise _no_data_error(name, root, e) from e


# ---------------------------------------------------------------- subsets and splits

def stratified_indices(labels: torch.Tensor, n: int, seed: int = 0, num_classes: int | None = None):
    """`n` indices into `labels` with the classes as equal as possible (the first n % K classes, in a seeded
    order, get one more), each class's picks random but fixed by `seed`. Returns (chosen, rest), sorted."""
    labels = torch.as_tensor(labels).cpu()
    K = num_classes or int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=K)
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"subset size must be an int >= 0, got {n!r}")
    if n > len(labels):
        raise ValueError(f"asked for {n} images but the split has only {len(labels)}; ask for at most {len(labels)}")
    if 0 < n < K:
        raise ValueError(f"a stratified subset of {n} images cannot hold all {K} classes; ask for at least {K}")
    g = torch.Generator().manual_seed(seed)
    extra = torch.zeros(K, dtype=torch.long)
    extra[torch.randperm(K, generator=g)[: n % K]] = 1
    want = n // K + extra
    if (want > counts).any():
        k = int(torch.nonzero(want > counts)[0])
        raise ValueError(f"class {k} has {int(counts[k])} images, fewer than the {int(want[k])} a stratified "
                         f"subset of {n} needs; ask for fewer images")
    chosen = []
    for k in range(K):
        members = torch.nonzero(labels == k).flatten()
        chosen.append(members[torch.randperm(len(members), generator=g)[: int(want[k])]])
    chosen = torch.sort(torch.cat(chosen)).values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[chosen] = False
    return chosen, torch.nonzero(mask).flatten()


def channel_stats(images: torch.Tensor):
    """Per-channel mean and std of uint8 images, in [0, 1] units (the dataset's own statistics)."""
    # Exact and fast: a 256-bin histogram per channel instead of 150 M floats.
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].flatten().cpu(), minlength=256).to(torch.float64)
        n = counts.sum()
        mean = (counts * values).sum() / n
        var = (counts * (values - mean) ** 2).sum() / (n - 1)
        means.append(float(mean))
        stds.append(float(var.sqrt()))
    return tuple(means), tuple(stds)


# ---------------------------------------------------------------- on-device augmentation and batches

def random_crop_flip(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None):
    """Random crop with zero padding (torchvision's RandomCrop(size, padding=pad)) and a horizontal flip with
    probability 1/2, for a whole uint8 batch in one gather."""
    B, C, H, W = images.shape
    dev = images.device
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (B, 1), device=dev, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (B, 1), device=dev, generator=generator)
    flip = torch.rand((B, 1), device=dev, generator=generator) < 0.5
    rows = dy + torch.arange(H, device=dev)  # (B, H)
    cols = dx + torch.arange(W, device=dev)  # (B, W)
    cols = torch.where(flip, cols.flip(1), cols)  # reading columns backwards is the flip
    b = torch.arange(B, device=dev)[:, None, None, None]
    c = torch.arange(C, device=dev)[None, :, None, None]
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def _mix(*ints) -> int:
    """A 63-bit seed from several ints: stable across runs, processes and machines."""
    return int.from_bytes(hashlib.sha256(repr(ints).encode()).digest()[:8], "little") >> 1


class Loader:
    """Batches (x, y, index) of an on-device ImageSet: x normalised float32, in channels_last layout.

    `shuffle` draws a new order each epoch, `augment` crops and flips. The order and the augmentation depend
    only on (seed, epoch), so a run resumed at an epoch boundary sees exactly the batches an uninterrupted run
    would have seen."""

    def __init__(self, data: ImageSet, batch_size: int, mean, std, *, shuffle: bool, augment: bool, seed: int = 0,
                 epoch: int = 0, pad: int = 4, drop_last: bool | None = None, channels_last: bool = True):
        if len(data) == 0:
            raise ValueError("cannot make batches from an empty image set; check the subset sizes")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data, self.batch_size, self.seed, self.epoch, self.pad = data, batch_size, seed, epoch, pad
        self.shuffle, self.augment = shuffle, augment
        # Drop a last partial training batch (a batch of 1 breaks BatchNorm), unless that is all there is.
        self.drop_last = (shuffle and len(data) >= batch_size) if drop_last is None else drop_last
        dev = data.images.device
        self.mean = torch.tensor(mean, device=dev).view(1, -1, 1, 1) * 255
        self.inv_std = 1 / (torch.tensor(std, device=dev).view(1, -1, 1, 1) * 255)
        self.channels_last = channels_last

    def __len__(self):
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        dev = self.data.images.device
        n = len(self.data)
        if self.shuffle:
            g = torch.Generator().manual_seed(_mix(self.seed, self.epoch, "order"))
            order = torch.randperm(n, generator=g).to(dev)
        else:
            order = torch.arange(n, device=dev)
        if self.augment:
            aug = torch.Generator(device=dev).manual_seed(_mix(self.seed, self.epoch, "augment"))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.data.images[idx]
            if self.augment:
                x = random_crop_flip(x, self.pad, aug)
            x = (x.float() - self.mean) * self.inv_std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.data.labels[idx], self.data.index[idx]


# ---------------------------------------------------------------- the bundle a notebook uses

@dataclass
class Data:
    name: str
    classes: list
    train: ImageSet
    val: ImageSet
    test: ImageSet
    mean: tuple
    std: tuple
    fingerprint: dict = field(default_factory=dict)  # what made these splits: part of every cache key

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self):
        return self.train.images.device

    def split(self, name: str) -> ImageSet:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use 'train', 'val' or 'test'")
        return getattr(self, name)

    def loader(self, split="train", batch_size=256, *, seed=0, epoch=0, train: bool | None = None,
               augment: bool | None = None, **kw) -> Loader:
        """Batches of a split. `train` (default: split == 'train') shuffles and, unless `augment=False`, augments."""
        train = split == "train" if train is None else train
        augment = train if augment is None else augment
        return Loader(self.split(split), batch_size, self.mean, self.std, shuffle=train, augment=augment,
                      seed=seed, epoch=epoch, **kw)

    def __repr__(self):
        return (f"Data({self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, "
                f"{self.num_classes} classes, {tuple(self.train.images.shape[1:])}, on {self.device})")


def _check_image_size(size):
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {size!r} (e.g. 32 to train Tiny ImageNet at "
                         f"CIFAR's resolution)")


def resize_images(images: torch.Tensor, size: int, chunk: int = 8192) -> torch.Tensor:
    """uint8 (N, C, H, W) images resized to (size, size) by area averaging (a box filter: downsampling 64 -> 32
    averages each 2x2 block), rounded back to uint8; in chunks, so 100,000 images need no 5 GB float copy."""
    _check_image_size(size)
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = [F.interpolate(images[i:i + chunk].float(), size=(size, size), mode="area").round_().clamp_(0, 255)
           .to(torch.uint8) for i in range(0, len(images), chunk)]
    return torch.cat(out) if out else images.new_empty((0, images.shape[1], size, size))


def get_data(name: str = "cifar10", *, train_size: int | None = None, val_size: int = 5000,
             test_size: int | None = None, split_seed: int = 0, device=None, root=None,
             download: bool = True, image_size: int | None = None) -> Data:
    """Load a dataset, hold out a stratified validation split, take stratified subsets, move it to `device`.

    `split_seed` fixes which images are validation and which subset is used; it is independent of the run
    seeds, so every run (and every cached teacher) of a scale sees the same images. `image_size` resizes every
    image (area averaging), e.g. Tiny ImageNet's 64x64 to 32x32, four times cheaper to train on a CPU; the
    normalisation statistics stay those of the training images at their published resolution (area averaging
    keeps the mean; the standard deviation shrinks by a few percent)."""
    name = canonical_name(name)
    if image_size is not None:
        _check_image_size(image_size)  # before any loading or downloading
    if device is not None and torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} was asked for but this machine has no usable GPU; use "
                           f"device='cpu' (or device=None, which picks the GPU when there is one)")
    classes, full_train, test = load(name, root, download)
    K = len(classes)
    for what, size, split in (("val_size", val_size, full_train), ("test_size", test_size, test)):
        if isinstance(size, int) and size > len(split):
            part = "training" if split is full_train else "test"
            raise ValueError(f"{what}={size} but the {name} {part} split has only {len(split)} images; ask for at "
                             f"most {len(split)}" + (" (or None for all of it)" if what == "test_size" else ""))
    mean, std = channel_stats(full_train.images)  # statistics of the whole published training set
    val_idx, rest = stratified_indices(full_train.labels, val_size, _mix(split_seed, "val"), K)
    pool = full_train.subset(rest)
    if train_size is not None:
        if train_size > len(pool):
            raise ValueError(f"train_size={train_size} but only {len(pool)} training images remain after "
                             f"holding out {val_size} for validation; ask for at most {len(pool)} (or None for "
                             f"all of them), or lower val_size")
        pool = pool.subset(stratified_indices(pool.labels, train_size, _mix(split_seed, "train"), K)[0])
    if len(pool) == 0:
        raise ValueError("the training split is empty; raise train_size or lower val_size")
    if test_size is not None:
        test = test.subset(stratified_indices(test.labels, test_size, _mix(split_seed, "test"), K)[0])
    val = full_train.subset(val_idx)
    if image_size is not None:  # only the images used (resizing all 110,000 Tiny ImageNet images takes seconds)
        pool, val, test = (ImageSet(resize_images(p.images, image_size), p.labels, p.index) for p in (pool, val, test))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    # The content, not only the positions: two copies of a dataset (the official download, a re-encoded one)
    # hold different images at the same positions, and a cached teacher must not be reused across them.
    content = hashlib.sha256()
    for part in (pool, val, test):
        content.update(part.images.numpy().tobytes())
        content.update(part.labels.numpy().tobytes())
    fingerprint = {"dataset": name, "train_size": len(pool), "val_size": len(val_idx), "test_size": len(test),
                   "split_seed": split_seed,
                   "train_index_sha": hashlib.sha256(pool.index.numpy().tobytes()).hexdigest()[:16],
                   "content_sha": content.hexdigest()[:16],
                   # the inputs a network sees are (x - mean) / std: other statistics, another trained model
                   "normalize": [round(v, 6) for v in (*mean, *std)]}
    if image_size is not None:
        fingerprint["image_size"] = image_size
    return Data(name, classes, pool.to(device), val.to(device), test.to(device),
                mean, std, fingerprint)


def from_scale(scale, device=None, **overrides) -> Data:
    """The data a `kdlab.scale.Scale` names (keyword overrides go to `get_data`)."""
    kw = dict(train_size=scale.train_size, val_size=scale.val_size, test_size=scale.test_size, device=device)
    kw.update(overrides)
    return get_data(scale.dataset, **kw)
