"""kdlab.data: published layouts (real CIFAR-10, fake CIFAR-100 and Tiny ImageNet), subsets, on-device batches."""
import pickle
import urllib.error

import numpy as np
import pytest
import torch

from kdlab import data as D
from kdlab.paths import data_dir


# ---------------------------------------------------------------- fake archives in the published layouts

def write_fake_cifar100(root, n_train=300, n_test=100, K=100, seed=0, names=None):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "fine_labels": (np.arange(n) % K).tolist(), "coarse_labels": (np.arange(n) % 20).tolist(),
                 "filenames": [f"{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": list(names) if names is not None else [f"class{k}" for k in range(K)],
                     "coarse_label_names": [f"super{k}" for k in range(20)]}, f)
    return folder


def write_fake_tiny_imagenet(root, wnids=("n01", "n02", "n03"), per_class=4, val_per_class=2, seed=0):
    from PIL import Image
    rng = np.random.default_rng(seed)
    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (folder / "words.txt").write_text("\n".join(f"{w}\tthing {w}, other name" for w in wnids) + "\n")
    for w in wnids:
        d = folder / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / f"{w}_{i}.JPEG")
    lines = []
    for i in range(val_per_class * len(wnids)):
        name = f"val_{i}.JPEG"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "val" / "images" / name)
        lines.append(f"{name}\t{wnids[(i * 2) % len(wnids)]}\t0\t0\t63\t63")  # labels in a non-trivial order
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_fake_cifar100_loads_with_fine_labels(tmp_path):
    write_fake_cifar100(tmp_path)
    classes, train, test = D.load("cifar100", tmp_path, download=False)
    assert len(classes) == 100 and classes[7] == "class7"
    assert train.images.shape == (300, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [i % 100 for i in range(300)]
    assert len(test) == 100
    # rows are R plane, G plane, B plane: pixel (0, 0) of channel c is byte c * 1024
    raw = pickle.load(open(tmp_path / "cifar-100-python" / "train", "rb"))["data"]
    assert train.images[5, 1, 0, 0] == raw[5, 1024] and train.images[5, 2, 31, 31] == raw[5, 3071]


def test_get_data_on_fake_cifar100_is_stratified(tmp_path):
    write_fake_cifar100(tmp_path, n_train=400)
    d = D.get_data("cifar-100", train_size=200, val_size=100, test_size=100, root=tmp_path, device="cpu")
    assert d.num_classes == 100 and len(d.train) == 200 and len(d.val) == 100 and len(d.test) == 100
    assert torch.bincount(d.train.labels, minlength=100).tolist() == [2] * 100
    assert torch.bincount(d.val.labels, minlength=100).tolist() == [1] * 100
    assert not set(d.train.index.tolist()) & set(d.val.index.tolist())  # never tune on what you train on


def test_tiny_imagenet_layout(tmp_path):
    folder = write_fake_tiny_imagenet(tmp_path)
    classes, train, test = D.load("tiny-imagenet-200", tmp_path, download=False)
    assert classes == ["thing n01", "thing n02", "thing n03"]
    assert train.images.shape == (12, 3, 64, 64)
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert test.labels.tolist() == [(i * 2) % 3 for i in range(6)]  # from val_annotations.txt, not file order
    from PIL import Image
    pixel = np.asarray(Image.open(folder / "val" / "images" / "val_3.JPEG").convert("RGB"))
    assert torch.equal(test.images[3], torch.from_numpy(pixel.copy()).permute(2, 0, 1))
    assert len(list(folder.glob("kdlab-decoded-*.pt"))) == 1  # decoded once, then read from the cache
    _, train2, _ = D.load("tinyimagenet", tmp_path, download=False)
    assert torch.equal(train.images, train2.images)


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "val" / "val_annotations.txt").unlink(), "val_annotations.txt is missing"),
    (lambda f: (f / "val" / "images" / "val_2.JPEG").unlink(), "are missing"),
    (lambda f: (f / "train" / "n02" / "images" / "n02_1.JPEG").write_bytes(b"not a jpeg"), "cannot decode"),
    (lambda f: [p.unlink() for p in (f / "train" / "n03" / "images").glob("*")], "no training images"),
    (lambda f: (f / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n"), "not in wnids"),
])
def test_tiny_imagenet_damage_is_named(tmp_path, damage, message):
    damage(write_fake_tiny_imagenet(tmp_path))
    with pytest.raises(D.DataError, match=message):
        D.load("tiny-imagenet-200", tmp_path, download=False)


def test_missing_or_truncated_cifar_files_are_named(tmp_path):
    folder = write_fake_cifar100(tmp_path)
    blob = (folder / "train").read_bytes()
    (folder / "train").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(D.DataError, match="truncated or corrupt"):
        D.load("cifar100", tmp_path, download=False)
    (folder / "train").unlink()
    with pytest.raises(D.DataError, match="is missing"):
        D.load("cifar100", tmp_path, download=False)


def test_no_data_and_no_network_says_how_to_get_it(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise urllib.error.URLError("Temporary failure in name resolution")
    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(D.DataError) as e:
        D.load("cifar100", tmp_path)
    msg = str(e.value)
    assert "could not be downloaded" in msg and "python -m kdlab data cifar100" in msg and "KDLAB_DATA" in msg
    with pytest.raises(D.DataError, match="cifar-10-batches-py"):
        D.load("cifar10", tmp_path / "empty", download=False)


def test_unknown_dataset_suggests_close_name():
    with pytest.raises(ValueError, match="Did you mean 'cifar10'"):
        D.get_data("cifar1O")


# ---------------------------------------------------------------- subsets

def test_stratified_indices_balance_and_determinism():
    labels = torch.arange(1000) % 10
    a, rest = D.stratified_indices(labels, 105, seed=3)
    assert len(a) == 105 and len(rest) == 895 and not set(a.tolist()) & set(rest.tolist())
    counts = torch.bincount(labels[a], minlength=10)
    assert counts.max() - counts.min() == 1 and counts.sum() == 105
    assert torch.equal(a, D.stratified_indices(labels, 105, seed=3)[0])
    assert not torch.equal(a, D.stratified_indices(labels, 105, seed=4)[0])


@pytest.mark.parametrize("n, message", [(5, "cannot hold all 10 classes"), (2000, "only 1000"), (-1, ">= 0")])
def test_stratified_indices_rejects_impossible_sizes(n, message):
    with pytest.raises(ValueError, match=message):
        D.stratified_indices(torch.arange(1000) % 10, n)


def test_channel_stats_match_float_computation():
    x = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    mean, std = D.channel_stats(x)
    ref = x.double() / 255
    assert np.allclose(mean, ref.mean((0, 2, 3)).numpy(), atol=1e-12)
    assert np.allclose(std, ref.std((0, 2, 3)).numpy(), atol=1e-12)


# ---------------------------------------------------------------- on-device augmentation and batches

def test_random_crop_flip_is_a_padded_crop_or_its_mirror():
    torch.manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 12, 12), dtype=torch.uint8)  # no zeros: padding is recognisable
    g = torch.Generator().manual_seed(1)
    out = D.random_crop_flip(x, pad=4, generator=g)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    offsets, flips = set(), 0
    for i in range(len(x)):
        found = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                 if torch.equal(out[i], (lambda c: c.flip(2) if f else c)(padded[i, :, dy:dy + 12, dx:dx + 12]))]
        assert found, f"image {i} is not a crop of its padded input"
        offsets.add(found[0][:2])
        flips += found[0][2]
    assert len(offsets) > 20 and 16 <= flips <= 48  # offsets vary, about half are flipped


def test_loader_covers_every_image_once_and_is_deterministic_per_epoch():
    imgs = torch.randint(0, 256, (103, 3, 8, 8), dtype=torch.uint8)
    data = D.ImageSet(imgs, torch.arange(103) % 10)
    L = lambda epoch: D.Loader(data, 10, (0.5,) * 3, (0.25,) * 3, shuffle=True, augment=True, seed=7, epoch=epoch,
                               drop_last=False)
    idx0 = torch.cat([i for _, _, i in L(0)])
    assert sorted(idx0.tolist()) == list(range(103))
    a, b = [x for x, _, _ in L(0)], [x for x, _, _ in L(0)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))  # same (seed, epoch): same batches, augmentation too
    assert not torch.equal(idx0, torch.cat([i for _, _, i in L(1)]))  # next epoch: a new order
    assert len(L(0)) == 11 and len(D.Loader(data, 10, (0,) * 3, (1,) * 3, shuffle=True, augment=False)) == 10


def test_eval_loader_is_ordered_normalised_and_channels_last():
    imgs = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    data = D.ImageSet(imgs, torch.zeros(20, dtype=torch.long))
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    batches = list(D.Loader(data, 8, mean, std, shuffle=False, augment=False))
    x = torch.cat([b[0] for b in batches])
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)
    assert torch.cat([b[2] for b in batches]).tolist() == list(range(20))
    back = x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert torch.allclose(back, imgs.float() / 255, atol=1e-5)


def test_empty_image_set_is_refused():
    empty = D.ImageSet(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        D.Loader(empty, 4, (0,) * 3, (1,) * 3, shuffle=False, augment=False)


# ---------------------------------------------------------------- the real CIFAR-10 (materialised by CI)

@pytest.fixture(scope="module")
def cifar10():
    if not (data_dir() / "cifar-10-batches-py" / "batches.meta").exists():
        pytest.fail(f"CIFAR-10 is not in {data_dir()}: run `python -m kdlab data cifar10` (CI materialises it "
                    f"from ../shared/data)")
    return D.get_data("cifar10", train_size=1000, val_size=500, test_size=500, device="cpu")


def test_real_cifar10_splits(cifar10):
    d = cifar10
    assert d.classes[:3] == ["airplane", "automobile", "bird"] and d.num_classes == 10
    assert (len(d.train), len(d.val), len(d.test)) == (1000, 500, 500)
    assert torch.bincount(d.train.labels).tolist() == [100] * 10
    assert not set(d.train.index.tolist()) & set(d.val.index.tolist())
    # the dataset's own statistics: the published CIFAR-10 train means are 0.4914, 0.4822, 0.4465
    assert np.allclose(d.mean, (0.4914, 0.4822, 0.4465), atol=2e-3)
    assert d.fingerprint["train_size"] == 1000 and len(d.fingerprint["train_index_sha"]) == 16
    again = D.get_data("cifar10", train_size=1000, val_size=500, test_size=500, device="cpu")
    assert torch.equal(again.train.index, d.train.index)  # the split depends on split_seed only
    other = D.get_data("cifar10", train_size=1000, val_size=500, test_size=500, split_seed=1, device="cpu")
    assert other.fingerprint != d.fingerprint
