"""One readable training loop for plain training and distillation.

    student = build("resnet8", data.num_classes, seed=0)
    history = fit(student, data, recipe, objective=KD(temperature=4), teacher=teacher, seed=0,
                  checkpoint="data/checkpoints/kd-seed0.pt")

An *objective* is any callable `objective(student_logits, teacher_logits, labels, index)` returning the loss,
or `(loss, {"name": per-batch scalar tensor, ...})` to report extra statistics per epoch (e.g. the fraction of
rectified targets); `index` is each sample's position in the dataset's published training split.
`teacher_logits` is None when there is no teacher; an objective with `needs_teacher = True` requires one.

What the loop does for speed (small CIFAR models are launch- and data-bound): data stays on the device
(kdlab.data), the model and the batches are channels_last (faster on CPUs too), half precision where it pays
(`precision`: bf16 autocast on GPUs and CPUs with native bf16, fp16 with a gradient scaler on older GPUs), the
teacher runs in eval mode under `torch.inference_mode()`, and nothing synchronises with the host inside a step
(losses are summed on the device; a non-finite loss is looked for every `check_every` steps).

What it does so that nothing is lost: after every epoch a checkpoint is written atomically (kdlab.io); a run
started again with the same checkpoint path resumes after its last finished epoch and ends with the same
weights as an uninterrupted run (on the CPU, bit for bit: the data order, the augmentation and the global RNG
are all derived from (seed, epoch), and the learning rate from the step). A checkpoint made by a different
run (another recipe, objective, teacher, data or seed) is refused, never silently reused.
"""
import functools
import hashlib
import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from kdlab import metrics
from kdlab.data import Data, _mix
from kdlab.describe import Undescribable, describe
from kdlab.io import CheckpointError, check_writable, exclusive, load_checked, save_atomic
from kdlab.losses import CrossEntropy
from kdlab.models import create
from kdlab.recipe import RECIPE_VERSION, Recipe

CHECKPOINT_FORMAT = 1


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and step and the checkpoint kept."""


class StaleCheckpointError(CheckpointError):
    """A checkpoint made by a different run than the one asked for."""


def resolve_device(device=None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but this machine has no usable GPU; use device='cpu' "
                           "(and KDLAB_SCALE=laptop or smoke)")
    return device


def build(arch: str, num_classes: int, seed: int = 0, device=None) -> torch.nn.Module:
    """A freshly initialised model whose weights depend only on (arch, num_classes, seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create(arch, num_classes)
    return model.to(resolve_device(device), memory_format=torch.channels_last)


@functools.cache
def cpu_bf16() -> bool:
    """bf16 autocast on the CPU: on where the CPU has native bf16 instructions (measured 1.4-1.5x faster
    training on a 2-core AVX512-BF16 EPYC), off elsewhere, where emulated bf16 is slower than fp32.
    `KDLAB_CPU_BF16=0` or `=1` overrides."""
    setting = os.environ.get("KDLAB_CPU_BF16", "auto").strip().lower()
    if setting in ("0", "1"):
        return setting == "1"
    if setting != "auto":
        raise ValueError(f"KDLAB_CPU_BF16 must be 0, 1 or auto, got {setting!r}; unset it, or set it to 0 or 1")
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def cuda_bf16() -> bool:
    """bf16 autocast on GPUs with native bf16 (Ampere and newer); older GPUs (T4, V100) would emulate it slowly."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch without the argument
        return torch.cuda.get_device_capability()[0] >= 8


PRECISIONS = ("bf16", "fp16", "fp32")


def precision(device: torch.device) -> str:
    """How training on `device` computes: 'bf16' or 'fp16' autocast, or 'fp32'.

    `KDLAB_PRECISION=bf16|fp16|fp32` chooses; unset (or `auto`): bf16 where the hardware has it natively (CUDA
    Ampere and newer, CPUs with AVX512-BF16), fp16 with a gradient scaler on older GPUs (T4, V100, P100, where
    bf16 would be emulated and slow), fp32 on other CPUs (emulated half precision is slower than fp32 there).
    Weights, optimiser state and every loss stay fp32 whatever the choice; the choice is part of every run's
    fingerprint and run card."""
    device = torch.device(device)
    setting = os.environ.get("KDLAB_PRECISION", "auto").strip().lower()
    if setting in PRECISIONS:
        return setting
    if setting not in ("", "auto"):
        raise ValueError(f"KDLAB_PRECISION must be one of {', '.join(PRECISIONS)} or auto, got {setting!r}; unset it "
                         f"for the default (bf16 where the hardware has it)")
    if device.type == "cuda":
        return "bf16" if cuda_bf16() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_bf16() else "fp32"


def _autocast(device: torch.device):
    # Weights, optimiser state and losses stay fp32; autocast runs convolutions and matmuls in half precision.
    p = precision(device)
    return torch.autocast(device.type, dtype=torch.float16 if p == "fp16" else torch.bfloat16, enabled=p != "fp32")


def _scaler(device: torch.device):
    """fp16 needs a gradient scaler (small gradients underflow to 0 in fp16); bf16 and fp32 do not."""
    return torch.amp.GradScaler(device.type) if precision(device) == "fp16" else None


def state_digest(model: torch.nn.Module) -> str:
    """A short hash of a model's weights: identifies a teacher in a student's checkpoint key."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()  # not inference_mode: the logits are handed to learners, who may edit them in place
def predict(model, data: Data, split: str = "test", batch_size: int = 1024) -> torch.Tensor:
    """Logits (float32, on the data's device) for every image of a split, in order, without augmentation."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    with _autocast(device):
        for x, _, _ in data.loader(split, batch_size, train=False):
            out.append(model(x).float())
    model.train(was_training)
    return torch.cat(out)


def evaluate(model, data: Data, split: str = "test", teacher=None, teacher_logits=None) -> dict:
    """acc, loss, ece and, given a teacher (model or its logits on this split), agreement and kl to it."""
    logits = predict(model, data, split)
    labels = data.split(split).labels
    if teacher is not None and teacher_logits is None:
        teacher_logits = predict(teacher, data, split)
    out = metrics.summarize(logits, labels, teacher_logits)
    out["loss"] = float(F.cross_entropy(logits, labels))
    return out


def _check_classes(model, teacher, data):
    for split in ("train", "val", "test"):
        labels = data.split(split).labels
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= data.num_classes):
            raise ValueError(f"{data.name} {split} labels span [{int(labels.min())}, {int(labels.max())}] but there "
                             f"are {data.num_classes} classes: labels must be 0..{data.num_classes - 1}. Check how "
                             f"the labels were built (e.g. after removing or remapping classes).")
    k_model = getattr(model, "num_classes", None)
    if k_model is not None and k_model != data.num_classes:
        raise ValueError(f"the model has {k_model} outputs but {data.name} has {data.num_classes} classes; "
                         f"build it with num_classes={data.num_classes}")
    k_teacher = getattr(teacher, "num_classes", None)
    if teacher is not None and k_teacher is not None and k_teacher != data.num_classes:
        raise ValueError(f"the teacher has {k_teacher} outputs but {data.name} has {data.num_classes} classes: "
                         f"a teacher must be trained on the same label set as its student (e.g. get_teacher on this "
                         f"data, which builds it with num_classes={data.num_classes})")


def describe_objective(objective, objective_id: str | None = None) -> str:
    """The objective's part of a run's fingerprint (kdlab.describe), or the caller's name for it.

    `objective_id` is the caller's promise: a name that changes whenever the objective's behaviour does. Without
    it, an objective kdlab cannot describe completely raises `Undescribable`."""
    if objective_id is not None:
        if not isinstance(objective_id, str) or not objective_id.strip():
            raise ValueError(f"objective_id must be a non-empty string naming the objective (change it whenever the "
                             f"objective changes), got {objective_id!r}")
        return f"named by the caller: {objective_id}"
    return describe(objective)


def run_fingerprint(model, data, recipe, objective, teacher, seed, objective_id: str | None = None) -> dict:
    """Everything that determines a training run's result: a checkpoint made under another one is stale.

    Raises `kdlab.describe.Undescribable` when the objective cannot be described and has no `objective_id`."""
    return {"format": CHECKPOINT_FORMAT, "recipe_version": RECIPE_VERSION,
            "arch": getattr(model, "arch", type(model).__name__),
            "params": sum(p.numel() for p in model.parameters()),
            "data": data.fingerprint, "recipe": recipe.to_dict(),
            "objective": describe_objective(objective, objective_id),
            "teacher": None if teacher is None else {"arch": getattr(teacher, "arch", type(teacher).__name__),
                                                     "weights": state_digest(teacher)},
            "seed": seed, "precision": precision(data.device)}


def _differences(a: dict, b: dict, prefix=""):
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: checkpoint has {va!r}, this run {vb!r}")
    return out


def _summary(row: dict, epochs: int) -> str:
    parts = [f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}", f"loss {row['train_loss']:.3f}",
             f"train acc {100 * row['train_acc']:.1f}%"]
    for split in ("val", "test"):
        if f"{split}_acc" in row:
            parts.append(f"{split} acc {100 * row[f'{split}_acc']:.1f}%")
    if "test_agreement" in row:
        parts.append(f"agreement {100 * row['test_agreement']:.1f}%")
    if row.get("train_skipped"):
        parts.append(f"skipped {100 * row['train_skipped']:.1f}% of steps (fp16 overflow)")
    parts.append(f"{row['seconds']:.1f} s")
    return "  ".join(parts)


def train_step(model, optimizer, objective, x, y, index=None, teacher=None, scaler=None):
    """One optimiser step; returns (loss, student logits, objective statistics), all still on the device.

    With a gradient `scaler` (fp16) a step whose gradients overflowed is skipped and the scale lowered;
    `stats["skipped"]` is then 1 for that step (summed per epoch by `fit`, no host synchronisation)."""
    with _autocast(x.device):
        t_logits = None
        if teacher is not None:
            with torch.inference_mode():
                t_logits = teacher(x).float()
            t_logits = t_logits.clone()  # a normal tensor: autograd may use it as a constant
        logits = model(x).float()
    out = objective(logits, t_logits, y, index)
    loss, stats = out if isinstance(out, tuple) else (out, {})
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return loss.detach(), logits.detach(), stats
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    # which devices' gradients overflowed, as tensors (no sync); read before step() and update() consume it
    found_inf = sum(scaler._found_inf_per_device(optimizer).values(), torch.zeros((), device=x.device))
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), logits.detach(), {**stats, "skipped": found_inf.float()}


def show_progress(progress: bool | None = None) -> bool:
    """Progress bars on unless `progress=False`, or unless KDLAB_PROGRESS=0 when `progress` is None. Runs whose
    outputs are saved (committed notebooks) turn them off: a saved bar shows only its initial "0%"; the plain
    summary lines say what the run did."""
    if progress is not None:
        return bool(progress)
    setting = os.environ.get("KDLAB_PROGRESS", "1").strip()
    if setting not in ("0", "1"):
        raise ValueError(f"KDLAB_PROGRESS must be 0 or 1, got {setting!r}; unset it to show progress bars")
    return setting == "1"


def fit(model, data: Data, recipe: Recipe, *, objective=None, teacher=None, seed: int = 0, checkpoint=None,
        resume: bool = True, eval_splits=("val", "test"), progress: bool | None = None, verbose: bool = True,
        desc: str | None = None, check_every: int = 25, callback=None,
        objective_id: str | None = None, eval_every: int = 1) -> pd.DataFrame:
    """Train `model` in place; returns the history, one row per epoch, as a DataFrame.

    `callback(epoch, model)`, if given, is called after each epoch trained in this call, once its checkpoint is
    saved (epoch counts from 1; the model is in train mode: switch to eval() and back inside if it predicts), to
    look at the model mid-way, e.g. notebook 06's temperature histograms. Epochs restored from a checkpoint are
    not replayed.

    A checkpoint is resumed only when everything that made it matches (`run_fingerprint`), the objective
    included. An objective kdlab cannot describe completely (kdlab.describe) cannot be checked, so with a
    checkpoint it needs `objective_id`: a name you choose and change whenever the objective changes.

    `eval_every` evaluates the splits every that many epochs and always after the last (other epochs' rows have
    no split columns): evaluating 2,000 test images costs about as much as training 1,500 on a CPU.

    Columns: epoch, lr, train_loss, train_acc, train_<stat> for each statistic the objective reports, then for
    each evaluated split <split>_acc, _loss, _ece and, with a teacher, _agreement and _kl; seconds, images_per_s.
    """
    Recipe.required(recipe)
    if isinstance(objective, torch.nn.modules.loss._Loss):
        raise TypeError(f"{type(objective).__name__}() is torch's loss, called as loss(input, target); kdlab objectives "
                        f"are called as objective(student_logits, teacher_logits, labels, index): use "
                        f"kdlab.losses.CrossEntropy() or KD(...), or wrap yours in a function of those four arguments")
    if objective is None and teacher is not None:
        raise ValueError("a teacher was given but no objective, so the student would learn from the labels alone "
                         "and the teacher would only be measured: pass objective=KD(...) (or another distillation "
                         "loss) to distil, or drop teacher= to train on the labels")
    if teacher is not None and teacher is model:
        raise ValueError("the student was passed as its own teacher: a self-teacher is a separately trained, frozen "
                         "copy (train one, e.g. with cache.get_teacher(arch, ...), then distil a fresh build(arch))")
    objective = objective if objective is not None else CrossEntropy()
    if getattr(objective, "needs_teacher", False) and teacher is None:
        raise ValueError(f"{objective!r} distils from a teacher: pass teacher=... (e.g. from kdlab.cache.get_teacher)")
    _check_classes(model, teacher, data)
    if isinstance(eval_splits, str):
        raise TypeError(f"eval_splits is a list of split names, e.g. ({eval_splits!r},), not the string {eval_splits!r}")
    for name, v in (("eval_every", eval_every), ("check_every", check_every)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    eval_splits = [s for s in eval_splits if len(data.split(s)) > 0]
    device = data.device
    model.to(device, memory_format=torch.channels_last)
    if teacher is not None:
        teacher.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)

    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
    scaler = _scaler(device)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and not checkpoint.is_dir():
        check_writable(checkpoint.parent)  # now, not after the first epoch
    try:
        fingerprint = run_fingerprint(model, data, recipe, objective, teacher, seed, objective_id)
    except Undescribable as e:
        if checkpoint is not None:
            raise Undescribable(f"kdlab cannot describe this objective completely ({e}), so it could not tell a "
                                f"checkpoint made with another objective from one made with this one. Pass "
                                f"objective_id='a name you change whenever the objective changes', or no "
                                f"checkpoint") from None
        fingerprint = {"objective": f"not described ({e})"}
    fingerprint = json.loads(json.dumps(fingerprint))
    # One process trains a run at a time: another one asking for it (a sweep's jobs, a notebook open twice) waits
    # here, then resumes from or loads what the first saved.
    with exclusive(checkpoint, "another process is training this run") if checkpoint is not None else nullcontext():
        history, start_epoch = [], 0
        if checkpoint is not None and checkpoint.exists() and resume:
            state = load_checked(checkpoint)
            if not isinstance(state, dict) or "fingerprint" not in state:
                raise StaleCheckpointError(f"{checkpoint} is not a kdlab run checkpoint (it has no fingerprint: a "
                                           f"plain torch.save of something else?). Pass another checkpoint path, or "
                                           f"delete it.")
            stored = json.loads(state["fingerprint"])
            if stored != fingerprint:
                diff = "; ".join(_differences(stored, fingerprint)[:6])
                err = StaleCheckpointError(f"checkpoint {checkpoint} was made by a different run ({diff}). Delete it, "
                                           f"or pass another checkpoint path (or resume=False to overwrite it).")
                err.differences = diff  # for callers whose own advice differs (kdlab.cache)
                raise err
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])  # the loss scale it had reached: an exact resume
            history, start_epoch = list(state["history"]), int(state["epoch"])
            if verbose and start_epoch < recipe.epochs:
                print(f"resuming from {checkpoint} after epoch {start_epoch}/{recipe.epochs}")

        teacher_eval = {}
        if teacher is not None and start_epoch < recipe.epochs:
            teacher_eval = {s: predict(teacher, data, s) for s in eval_splits}

        progress = show_progress(progress)
        steps_per_epoch = len(data.loader("train", recipe.batch_size))
        bar = tqdm(total=recipe.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
                   desc=desc or getattr(model, "arch", "train"), disable=not progress, leave=False)
        epoch, step = start_epoch, 0
        try:
            cuda_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
                if device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda_ids):  # the caller's RNG state is left as it was
                for epoch in range(start_epoch, recipe.epochs):
                    torch.manual_seed(_mix(seed, epoch, "global"))  # dropout etc.: same on resume
                    t0 = time.perf_counter()
                    model.train()
                    loss_sum = torch.zeros((), device=device)
                    correct = torch.zeros((), device=device, dtype=torch.long)
                    stat_sums, seen = {}, 0
                    first_bad = torch.full((), -1, device=device, dtype=torch.long)
                    loader = data.loader("train", recipe.batch_size, seed=seed, epoch=epoch, augment=recipe.augment)
                    for step, (x, y, index) in enumerate(loader):
                        lr = recipe.lr_at(epoch * steps_per_epoch + step, steps_per_epoch)
                        for group in optimizer.param_groups:
                            group["lr"] = lr
                        loss, logits, stats = train_step(model, optimizer, objective, x, y, index, teacher, scaler)
                        b = len(y)
                        seen += b
                        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), step, first_bad)
                        loss_sum += loss * b
                        correct += (logits.argmax(1) == y).sum()
                        for k, v in stats.items():
                            stat_sums[k] = stat_sums.get(k, 0) + v.detach().float() * b
                        bar.update(1)
                        if (step + 1) % check_every == 0 and first_bad.item() >= 0:
                            break
                    bad = int(first_bad.item())
                    if bad >= 0:
                        if checkpoint is None:
                            kept = "no checkpoint was kept (pass checkpoint=...)"
                        elif history:
                            kept = f"the checkpoint {checkpoint} still holds epoch {len(history)}"
                        else:
                            kept = "no epoch had finished, so there is no checkpoint yet"
                        bad_lr = recipe.lr_at(epoch * steps_per_epoch + bad, steps_per_epoch)
                        raise NonFiniteLossError(f"the loss became NaN or infinite at epoch {epoch + 1}, step "
                                                 f"{bad + 1} (lr {bad_lr:.4g}); {kept}. Lower the learning rate or "
                                                 f"check the inputs and the objective.")
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    train_seconds = time.perf_counter() - t0
                    row = {"epoch": epoch + 1, "lr": lr, "train_loss": float(loss_sum) / seen,
                           "train_acc": float(correct) / seen}
                    row.update({f"train_{k}": float(v) / seen for k, v in stat_sums.items()})
                    for s in eval_splits if (epoch + 1) % eval_every == 0 or epoch + 1 == recipe.epochs else ():
                        row.update({f"{s}_{k}": v for k, v in
                                    evaluate(model, data, s, teacher_logits=teacher_eval.get(s)).items()})
                    row["seconds"] = time.perf_counter() - t0
                    row["images_per_s"] = seen / train_seconds
                    history.append(row)
                    if checkpoint is not None:
                        save_atomic({"fingerprint": json.dumps(fingerprint), "epoch": epoch + 1,
                                     "scaler": None if scaler is None else scaler.state_dict(),
                                     "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                     "history": history}, checkpoint)
                    if callback is not None:  # after the save: a callback that raises loses no training
                        callback(epoch + 1, model)
                    if verbose:
                        (bar.write if progress else print)(_summary(row, recipe.epochs))
                    elif row.get("train_skipped", 0) > 0.05:  # never silent: many fp16 steps overflowed
                        print(f"{desc or 'train'}: epoch {epoch + 1} skipped {100 * row['train_skipped']:.0f}% of its "
                              f"steps (fp16 gradients overflowed; the loss scale was lowered). If this persists, lower "
                              f"the learning rate or set KDLAB_PRECISION=fp32")
        except KeyboardInterrupt:
            if checkpoint is None:
                where = "No checkpoint was being written (pass checkpoint=... to make runs resumable)."
            elif history:
                where = (f"The checkpoint {checkpoint} holds epoch {len(history)}: run the same call again to resume "
                         f"there.")
            else:
                where = "No epoch had finished, so there is no checkpoint yet: the same call starts again from epoch 1."
            print(f"interrupted during epoch {epoch + 1}, step {step + 1}. {where}")
            raise
        finally:
            bar.close()
        frame = pd.DataFrame(history)
        frame.attrs["fingerprint"] = fingerprint
        frame.attrs["checkpoint"] = None if checkpoint is None else str(checkpoint)
        frame.attrs["trained_epochs"] = recipe.epochs - start_epoch  # 0: loaded, nothing trained in this call
        return frame
