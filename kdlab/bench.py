"""`python -m kdlab bench`: kdlab's training pipeline against the conventional one, same model, same device.

- kdlab: the dataset on the device as uint8, crop + flip + normalise as a few batched tensor operations,
  channels_last, bf16 autocast (CUDA, and CPUs with native bf16), the teacher under inference_mode; the step is `kdlab.train.train_step`,
  the one every notebook runs.
- conventional: what most tutorials write: a torchvision-style dataset of PIL images, RandomCrop(32, padding=4),
  RandomHorizontalFlip, ToTensor, Normalize, a DataLoader with worker processes (pinned memory on CUDA), a
  contiguous fp32 model, the teacher in eval under no_grad.

Both see real CIFAR-10 images, the same batch size, the same model and the same optimiser; each is warmed up,
then timed over the same number of steps (synchronising the device before reading the clock). This is a
benchmark, not a test: CI runs only its quick CPU form to prove it works.
"""
import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F


class _PILDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: a PIL image through the transforms."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _timed(step, batches, warmup, steps, device, batch_size):
    it = iter(batches)
    for _ in range(warmup):
        step(*next(it))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(*next(it))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    return steps * batch_size / seconds, peak


def _forever(make_iter):
    epoch = 0
    while True:
        yield from make_iter(epoch)
        epoch += 1


def run(model: str = "resnet8", teacher: str | None = None, batch_size: int = 128, steps: int = 20,
        warmup: int = 3, workers: int | None = None, device=None, dataset: str = "cifar10",
        num_classes: int | None = None) -> dict:
    """Images/s and peak GPU memory (MiB; NaN on the CPU) of both pipelines: {"kdlab": (ips, mib), ...}.
    `num_classes` sizes the models' heads (default: the dataset's); labels stay the dataset's."""
    for name, value, least in (("steps", steps, 1), ("warmup", warmup, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be an integer >= 0 (DataLoader worker processes), got {workers!r}")
    from torchvision import transforms

    from kdlab import data as kdata
    from kdlab.losses import KD, CrossEntropy
    from kdlab.models import create
    from kdlab.train import _scaler, build, resolve_device, train_step

    device = resolve_device(device)
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    classes, train, _ = kdata.load(dataset)
    mean, std = kdata.channel_stats(train.images)
    K = num_classes or len(classes)
    objective = KD() if teacher else CrossEntropy()
    results = {}

    # kdlab: on-device data, the course's own train step
    data = kdata.ImageSet(train.images.to(device), train.labels.to(device))
    loader = lambda epoch: kdata.Loader(data, batch_size, mean, std, shuffle=True, augment=True, epoch=epoch)
    student = build(model, K, seed=0, device=device)
    t_model = build(teacher, K, seed=1, device=device).eval() if teacher else None
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scaler = _scaler(device)  # fp16 on GPUs without bf16, as fit trains there
    step = lambda x, y, idx: train_step(student, opt, objective, x, y, idx, t_model, scaler)
    results["kdlab"] = _timed(step, _forever(loader), warmup, steps, device, batch_size)
    del data, loader, student, t_model, opt, step, scaler  # the conventional pipeline's peak memory must not count them
    if device.type == "cuda":
        import gc
        gc.collect()
        torch.cuda.empty_cache()

    # conventional: PIL transforms in DataLoader workers, fp32, contiguous
    tf = transforms.Compose([transforms.RandomCrop(32 if dataset.startswith("cifar") else 64, padding=4),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize(mean, std)])
    ds = _PILDataset(train.images.permute(0, 2, 3, 1).numpy(), train.labels.numpy(), tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                                     pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    torch.manual_seed(0)
    student = create(model, K).to(device)
    t_model = create(teacher, K).to(device).eval() if teacher else None
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def conventional_step(x, y):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        t_logits = None
        if t_model is not None:
            with torch.no_grad():
                t_logits = t_model(x)
        logits = student(x)
        loss = objective(logits, t_logits, y) if teacher else F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    results["conventional"] = _timed(conventional_step, _forever(lambda e: dl), warmup, steps, device, batch_size)
    return {"model": model, "teacher": teacher, "batch_size": batch_size, "steps": steps, "device": device,
            "workers": workers, "kdlab": results["kdlab"], "conventional": results["conventional"]}


def suite(device, quick: bool = False, workers: int | None = None):
    """The performance table: each row kdlab, conventional, ratio, with images/s and peak GPU memory.

    Epoch and schedule times are extrapolated from timed steps (warm-up excluded): one epoch is 50,000 images
    (CIFAR-100's training set; the images timed are CIFAR-10's, through 100-class heads, since only the
    shapes matter for speed). `quick` swaps in small models and two steps: it proves the suite runs (CI)."""
    import pandas as pd
    student, teacher = ("resnet8", "resnet14") if quick else ("resnet8x4", "resnet32x4")
    steps, warmup = (2, 1) if quick else (50, 10)
    rows = []
    for batch, what, scale_to, unit, target in (
            (512, f"one KD epoch {teacher} -> {student}, 50k images, batch 512", 1, "s", "<= 1.0 s and >= 10x"),
            (64, f"full RepDistiller schedule KD {teacher} -> {student} (240 epochs, batch 64)", 240, "min",
             "<= 5 min")):
        r = run(student, teacher, batch, steps, warmup, workers, device, num_classes=100)
        t = {k: 50_000 * scale_to / r[k][0] / (60 if unit == "min" else 1) for k in ("kdlab", "conventional")}
        rows.append({"what": what, "kdlab": f"{t['kdlab']:.2f} {unit}", "conventional": f"{t['conventional']:.2f} {unit}",
                     "ratio": f"{t['conventional'] / t['kdlab']:.1f}x", "target": target,
                     "kdlab images/s": round(r["kdlab"][0]), "conventional images/s": round(r["conventional"][0]),
                     "kdlab peak MiB": r["kdlab"][1], "conventional peak MiB": r["conventional"][1]})
    table = pd.DataFrame(rows).set_index("what")
    print(f"kdlab bench --suite on {describe_device(device)} ({'quick form: small models, 2 steps' if quick else f'{steps} timed steps after {warmup} warm-up'}); "
          "times extrapolated from timed steps")
    print(table.to_string())
    print("notebook rows (reduced <= 3 min on a GPU, laptop <= 10 min on a 2-core CPU) and CI (<= 20 min) are timed "
          "by running them: see benchmarks/RESULTS.md")
    return table


COST_MODELS = ("resnet8", "resnet14", "resnet20", "resnet8x4", "resnet32x4", "ShuffleV2")


def measure_costs(device, models=None, batch_size=None, quick=False):
    """Measures and saves this machine's cost rows (kdlab.costs), one per model, and prints them."""
    import pandas as pd

    from kdlab import costs
    from kdlab.models import canonical
    names = [canonical(m.strip()) for m in models.split(",")] if models else list(COST_MODELS)
    batch = batch_size or (512 if device.type == "cuda" else 128)
    steps, warmup = (2, 1) if quick else (10, 2)
    rows = []
    for name in names:
        rows.append(costs.measure(name, device, batch, steps, warmup))
        print(f"{name}: {rows[-1].train_ips:.0f} train images/s, {rows[-1].infer_ips:.0f} inference images/s",
              flush=True)
    path = costs.save(rows)
    print(pd.DataFrame([r.__dict__ for r in rows]).drop(columns=["source"]).to_string(index=False))
    print(f"saved to {path}: 'python -m kdlab plan' now uses these rows for this machine")
    return rows


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from kdlab.runcard import _cpu_name
    return f"{_cpu_name()}, {torch.get_num_threads()} threads"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m kdlab bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="student architecture (default: resnet8 on CPU, resnet8x4 on CUDA)")
    p.add_argument("--teacher", default=None, help="time a KD step from this (untrained) teacher, e.g. resnet32x4")
    p.add_argument("--batch-size", type=int, default=None, help="default: 128 on CPU, 512 on CUDA")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 on CPU, 200 on CUDA)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers for the conventional pipeline")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quick", action="store_true", help="a few steps only: proves it runs (CI)")
    p.add_argument("--suite", action="store_true", help="the performance table (KD epoch, full schedule), "
                   "each row kdlab vs conventional")
    p.add_argument("--costs", action="store_true", help="measure this machine's cost rows (train and inference "
                   "images/s, operators, FLOPs per model) for 'python -m kdlab plan' and save them under KDLAB_HOME")
    p.add_argument("--models", default=None, help="with --costs: comma-separated models (default: every model "
                   "the notebooks train)")
    a = p.parse_args(argv)
    from kdlab.train import resolve_device
    device = resolve_device(a.device)
    if a.costs:
        return measure_costs(device, a.models, a.batch_size, a.quick)
    if a.suite:
        return suite(device, a.quick, a.workers)
    cuda = device.type == "cuda"
    model = a.model or ("resnet8x4" if cuda else "resnet8")
    batch = a.batch_size or (512 if cuda else 128)
    steps = 3 if a.quick else (a.steps or (200 if cuda else 20))
    warmup = 1 if a.quick else a.warmup
    print(f"kdlab bench: {model}{' <- ' + a.teacher if a.teacher else ''} on {device.type} "
          f"({describe_device(device)}), batch {batch}, {steps} timed steps after {warmup} warm-up", flush=True)
    r = run(model, a.teacher, batch, steps, warmup, a.workers, device)
    mem = lambda m: "" if m != m else f", peak GPU memory {m:.0f} MiB"
    from kdlab.train import precision
    print(f"  kdlab        (on-device uint8 data + augmentation, channels_last, {precision(device)}): "
          f"{r['kdlab'][0]:8.0f} images/s{mem(r['kdlab'][1])}")
    print(f"  conventional (DataLoader x{r['workers']} workers + PIL transforms, fp32):             "
          f"{r['conventional'][0]:8.0f} images/s{mem(r['conventional'][1])}")
    print(f"speedup: {r['kdlab'][0] / r['conventional'][0]:.2f}x")
    return r
