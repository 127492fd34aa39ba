"""A process for the tests that need a real one (SIGKILL and resume, two processes sharing the teacher cache).

    python tests/_train_worker.py fit DATA CHECKPOINT OUT [--slow SECONDS]
    python tests/_train_worker.py teacher DATA OUT [--barrier DIR --name NAME --peers N]

DATA is a `kdlab.data.Data` saved with torch.save by the test (reading CIFAR-10 again would cost seconds per
process). OUT receives the final state_dict (and the history) with torch.save.

`fit` trains resnet8 for EPOCHS epochs with a *plain function* as the objective (its repr holds a memory
address that differs from process to process: a resumed run must still accept the checkpoint). `--slow`
sleeps that long in every step after the first epoch, so that a test can kill the process mid-run reliably;
sleeping changes no number.

`teacher` calls kdlab.cache.get_teacher (KDLAB_HOME comes from the environment). With `--barrier`, each
process writes DIR/NAME and waits until N such files exist, so that the processes ask for the teacher at the
same moment.
"""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kdlab.recipe import Recipe

EPOCHS = 3
RECIPE = Recipe(epochs=EPOCHS, batch_size=50, lr=0.05, schedule="onecycle")
TEACHER_RECIPE = Recipe(epochs=1, batch_size=50, lr=0.05, schedule="onecycle")
HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "train_acc"]

_calls = 0
_slow = 0.0
_steps_per_epoch = None


def cross_entropy(student_logits, teacher_logits, labels, index=None):
    global _calls
    _calls += 1
    if _slow and _calls > _steps_per_epoch:
        time.sleep(_slow)
    return F.cross_entropy(student_logits, labels)


def main(argv=None):
    global _slow, _steps_per_epoch
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["fit", "teacher"])
    p.add_argument("data")
    p.add_argument("paths", nargs="+")
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--barrier")
    p.add_argument("--name")
    p.add_argument("--peers", type=int, default=2)
    args = p.parse_args(argv)
    data = torch.load(args.data, weights_only=False)

    if args.mode == "fit":
        from kdlab.train import build, fit
        checkpoint, out = args.paths
        _slow = args.slow
        _steps_per_epoch = len(data.loader("train", RECIPE.batch_size))
        model = build("resnet8", data.num_classes, seed=0, device="cpu")
        # objective_id: the function reads globals (a call counter, the delay) that differ between processes
        history = fit(model, data, RECIPE, objective=cross_entropy, seed=0, checkpoint=checkpoint,
                      eval_splits=(), progress=False, verbose=True, objective_id="cross-entropy")
        torch.save({"state": model.state_dict(), "history": history[HISTORY_COLUMNS].to_dict("list")}, out)
    else:
        from kdlab.cache import get_teacher
        (out,) = args.paths
        if args.barrier:
            barrier = Path(args.barrier)
            (barrier / args.name).touch()
            deadline = time.monotonic() + 60
            while len(list(barrier.iterdir())) < args.peers:
                if time.monotonic() > deadline:
                    sys.exit("barrier: the other process never arrived")
                time.sleep(0.01)
        teacher = get_teacher("resnet8", data, TEACHER_RECIPE, seed=0, scale="test", progress=False)
        torch.save({"state": teacher.state_dict()}, out)
    print("worker done", flush=True)


if __name__ == "__main__":
    main()
