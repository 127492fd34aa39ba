"""What one image costs a model on a device: the table behind `python -m kdlab plan`'s time estimates.

A row holds, for one model on one device at one precision, the training step's images/s (kdlab's own
`train_step` at the scale's batch size), inference images/s (evaluation and a frozen teacher's forward), random
crop and flip's images/s (added for a recipe that augments), and what the step is made of: operators launched per training step and per inference batch
and forward GFLOPs per 32x32 image. `python -m kdlab bench --costs` measures the rows of this machine (CPU or
GPU) and saves them to `<KDLAB_HOME>/costs.json`, which `plan` then prefers. `kdlab/costs.json` ships the rows
measured where kdlab is developed.

GPUs: small CIFAR models are launch-bound there, so a step costs about a fixed time per operator on the host
plus a small time per image on the device. `gpu_estimate` uses that model with two constants fitted to the two
H100 measurements in benchmarks/RESULTS.md (a KD step resnet32x4 -> resnet8x4 took 15.8 ms at batch 64 and
16.9 ms at batch 512): the time per operator (that step's operators as `count_ops` counts them), and the time
per image per GFLOP. Every GPU figure from it is labelled an estimate until a GPU row measured by
`bench --costs` replaces it.
"""
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from kdlab.paths import home_dir

SHIPPED = Path(__file__).with_name("costs.json")

# The launch-bound GPU model (H100, bf16), fitted to the two KD steps resnet32x4 -> resnet8x4 measured there
H100_KD_STEP_SECONDS = {64: 15.8e-3, 512: 16.9e-3}
REFERENCE_GPU = "NVIDIA H100 (estimate)"


@dataclass(frozen=True)
class Cost:
    device: str  # "cpu: AMD EPYC, 2 threads" or a GPU's name
    arch: str
    precision: str
    batch_size: int
    train_ips: float  # training images/s (forward, backward, optimizer step; batches made without augmentation)
    infer_ips: float  # inference images/s
    ops_train: int  # operators per training step
    ops_infer: int  # operators per inference batch
    gflops: float  # forward GFLOPs per 32x32 image
    augment_ips: float  # images/s of random crop and flip alone (a recipe with augment=True adds it)
    source: str  # "measured <date> at <commit>" or "estimate: ..."


def _read(path: Path) -> list:
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
        return [Cost(**r) for r in rows]
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path} is not a kdlab cost table ({e}). Delete it and measure again with "
                         f"'python -m kdlab bench --costs'") from None


def table(home=None) -> list:
    """The shipped rows, then this machine's own (`<home>/costs.json`), later rows replacing earlier ones."""
    rows = {}
    for r in _read(SHIPPED) + _read(Path(home or home_dir()) / "costs.json"):
        rows[r.device, r.arch, r.precision] = r
    return list(rows.values())


def save(rows, home=None) -> Path:
    """Adds measured rows to `<home>/costs.json` (replacing rows of the same device, model and precision)."""
    from kdlab.io import check_writable
    path = Path(home or home_dir()) / "costs.json"
    check_writable(path.parent)
    keep = {(r.device, r.arch, r.precision): r for r in _read(path)}
    keep.update({(r.device, r.arch, r.precision): r for r in rows})
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps([asdict(r) for r in keep.values()], indent=1) + "\n")
    tmp.replace(path)
    return path


def gpu_basis(rows, arch: str):
    """The CPU row whose operator and FLOP counts the GPU model reads for `arch`: the first bf16 one (the modelled
    GPU trains in bf16, and autocast changes the operator count), else the first; None without one."""
    cpu_rows = [r for r in rows if r.arch == arch and r.device.startswith("cpu")]
    return next((r for r in cpu_rows if r.precision == "bf16"), cpu_rows[0] if cpu_rows else None)


def gpu_constants(rows) -> tuple:
    """(seconds per operator, seconds per image per GFLOP) of the H100 model, from the resnet8x4 and resnet32x4
    rows' counts: the measured KD step is resnet8x4's training step plus resnet32x4's forward (and the loss)."""
    s, t = (gpu_basis(rows, a) for a in ("resnet8x4", "resnet32x4"))
    if s is None or t is None:
        raise KeyError("the GPU model needs the resnet8x4 and resnet32x4 rows: python -m kdlab bench --costs")
    (b0, t0), (b1, t1) = sorted(H100_KD_STEP_SECONDS.items())
    per_image = (t1 - t0) / (b1 - b0)
    per_op = (t0 - b0 * per_image) / (s.ops_train + t.ops_infer + 17)  # 17: the KD loss and the logits' copy
    return per_op, per_image / (3 * s.gflops + t.gflops)  # training ~3 forwards' FLOPs


def gpu_estimate(cpu_row: Cost, batch_size: int, rows, pixels: float = 1.0) -> Cost:
    """The H100 row that the launch-bound model predicts from a row's operator and FLOP counts, for images of
    `pixels` times the area of 32x32 (the operators stay, the FLOPs grow)."""
    per_op, per_gflop = gpu_constants(rows)
    gflops = cpu_row.gflops * pixels

    def ips(ops, flops_factor):
        step = ops * per_op + batch_size * gflops * flops_factor * per_gflop
        return batch_size / step
    # training costs about 3 forwards' FLOPs (forward, and backward twice that)
    return Cost(REFERENCE_GPU, cpu_row.arch, "bf16", batch_size, ips(cpu_row.ops_train, 3.0),
                ips(cpu_row.ops_infer, 1.0), cpu_row.ops_train, cpu_row.ops_infer, gflops,
                float("inf"),  # the model's operator count already holds the augmentation's
                f"estimate: launch-bound model fitted to two H100 measurements, from the operator counts of "
                f"{cpu_row.device}")


def lookup(rows, device: str, arch: str, batch_size: int, pixels: float = 1.0, precision: str | None = None) -> Cost:
    """The row for `arch` on `device` ("cpu: ..." names a CPU, REFERENCE_GPU the H100 model, another name a
    measured GPU) for images of `pixels` times 32x32's area; for an unmeasured CPU, the first CPU row of that
    model, of the same precision where one is measured (said in its `source`). Measured rows scale with the area.

    `precision` ('bf16', 'fp16', 'fp32'; None: any) is the one the device trains in: two CPUs with one name (a
    2-core "AMD EPYC" with native bf16 and one without, which trains in fp32 at about a quarter of the speed)
    have a row each, and only a row of the precision the machine trains in describes it."""
    def scaled(r):
        return r if pixels == 1 else replace(r, train_ips=r.train_ips / pixels, infer_ips=r.infer_ips / pixels,
                                             augment_ips=r.augment_ips / pixels)

    mine = [r for r in rows if r.device == device and r.arch == arch]
    for r in mine:
        if precision in (None, r.precision):
            return scaled(r)
    cpu_rows = [r for r in rows if r.arch == arch and r.device.startswith("cpu")]
    if not cpu_rows:
        raise KeyError(f"no cost row for {arch}: measure it with 'python -m kdlab bench --costs --models {arch}'")
    if device == REFERENCE_GPU:
        return gpu_estimate(gpu_basis(rows, arch), batch_size, rows, pixels)
    same = [r for r in cpu_rows if precision in (None, r.precision)]
    borrowed = (same or mine or cpu_rows)[0]
    if borrowed.precision == precision or precision is None:
        why = f"this machine has no row, so {borrowed.device}'s"
    else:
        why = (f"this machine trains in {precision} and no {precision} row is measured, so {borrowed.device}'s "
               f"{borrowed.precision} row")
    return replace(scaled(borrowed), device=device,
                   source=f"estimate: {why} (measure yours: python -m kdlab bench --costs)")


def device_name(device) -> str:
    """A device's name in the cost table: "cpu: <the CPU>, <threads> threads" or the GPU's name."""
    from kdlab.bench import describe_device
    return describe_device(device) if device.type == "cuda" else f"cpu: {describe_device(device)}"


def count_ops(fn) -> int:
    """Operators `fn()` dispatches (about one kernel launch each on a GPU)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            _Count.n += 1
            return func(*args, **(kwargs or {}))
    with _Count():
        fn()
    return _Count.n


def measure(arch: str, device=None, batch_size: int = 128, steps: int = 10, warmup: int = 2,
            num_classes: int = 10) -> Cost:
    """One row: `arch` trained and evaluated on random 32x32 images with kdlab's own step, timed after warm-up."""
    import datetime
    import time

    import torch

    from kdlab import data as kdata
    from kdlab.losses import CrossEntropy
    from kdlab.runcard import _git_commit
    from kdlab.train import _autocast, _scaler, build, precision, resolve_device, train_step
    for name, v, least in (("steps", steps, 1), ("warmup", warmup, 0), ("batch_size", batch_size, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
    device = resolve_device(device)
    g = torch.Generator().manual_seed(0)
    n = batch_size * 4
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    labels = torch.randint(0, num_classes, (n,), generator=g).to(device)
    loader, augmented = (kdata.Loader(kdata.ImageSet(images, labels), batch_size, (0.5,) * 3, (0.25,) * 3,
                                      shuffle=True, augment=a) for a in (False, True))
    model = build(arch, num_classes, seed=0, device=device)
    # timed with the optimizer fit builds (on the CPU a per-tensor loop, 2.4x faster there than foreach); operators
    # counted with foreach, which fit's optimizer uses on CUDA: the count a GPU sees
    optimizers = {foreach: torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                           weight_decay=5e-4, foreach=foreach) for foreach in (None, True)}
    scaler, objective = _scaler(device), CrossEntropy()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def batches(source):
        while True:
            yield from source

    it, it_augmented = batches(loader), batches(augmented)

    def step(foreach=None):
        x, y, idx = next(it)
        train_step(model, optimizers[foreach], objective, x, y, idx, None, scaler)

    x_eval = next(iter(loader))[0]

    @torch.inference_mode()
    def infer():
        with _autocast(device):
            model(x_eval).float()

    def timed(fn):
        for _ in range(warmup):
            fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        return steps * batch_size / (time.perf_counter() - t0)

    model.train()
    ops_train, train_ips = count_ops(lambda: step(foreach=True)), timed(step)
    model.eval()
    ops_infer, infer_ips = count_ops(infer), timed(infer)
    augment_ips = timed(lambda: next(it_augmented))
    ops_augment = count_ops(lambda: next(it_augmented)) - count_ops(lambda: next(it))
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x_eval[:1].float())
    commit = _git_commit() or "unknown commit"
    return Cost(device_name(device), arch,
                precision(device), batch_size, round(train_ips, 1), round(infer_ips, 1), ops_train + ops_augment, ops_infer,
                round(counter.get_total_flops() / 1e9, 4), round(augment_ips, 1),
                f"measured {datetime.date.today().isoformat()} at {commit}, {steps} steps after {warmup} warm-up")
