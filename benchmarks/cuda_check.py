"""Checks kdlab's CUDA paths on a GPU machine (not a test: CI has no GPU; run it where `torch.cuda` is available).

1. Every objective gives the same loss and student gradient on CUDA as on the CPU in fp32 (random logits).
2. One short `fit` per objective on CUDA (bf16 autocast, channels_last, data on the device) ends with finite
   losses and the statistics the objective reports, and a checkpointed run resumes on CUDA.
3. Prints the device, versions and seconds per epoch, to be quoted with the results.

    python benchmarks/cuda_check.py [--data-root data] [--train-size 4000]
"""
import argparse
import tempfile
import time

import torch

from kdlab import losses as L
from kdlab.cache import get_teacher
from kdlab.data import get_data
from kdlab.recipe import Recipe
from kdlab.train import build, fit, precision


def objectives():
    return {"CE": L.CrossEntropy(), "KD": L.KD(temperature=4), "Tf-KD self": L.self_kd(0.9, 20.0),
            "Tf-KD reg": L.TfKDReg(), "DR-KD": L.DRKD(), "KA-PS": L.KA(method="ps"), "KA-LSR": L.KA(method="lsr"),
            "DTD-FLSW": L.DTD(weight="flsw"), "DTD-CWSM": L.DTD(weight="cwsm"), "KA+DTD": L.DTD(adjust="ps")}


def same_on_cpu_and_cuda():
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(64, 10, generator=g) * 3, torch.randn(64, 10, generator=g) * 3, torch.randint(0, 10, (64,), generator=g)
    for name, obj in objectives().items():
        grads = []
        for dev in ("cpu", "cuda"):
            sd = s.detach().clone().to(dev).requires_grad_(True)
            out = obj(sd, t.to(dev), y.to(dev))
            loss = out[0] if isinstance(out, tuple) else out
            loss.backward()
            grads.append((loss.detach().cpu(), sd.grad.cpu()))
        ok = torch.allclose(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6) and \
            torch.allclose(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-7)
        print(f"  {name:11s} cpu {grads[0][0].item():.6f} cuda {grads[1][0].item():.6f} grads equal: {ok}")
        assert ok, name


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-root", default=None)
    p.add_argument("--train-size", type=int, default=4000)
    a = p.parse_args()
    assert torch.cuda.is_available(), "run this where CUDA is available"
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, precision {precision(torch.device('cuda'))}")
    print("1. CPU vs CUDA, fp32:")
    same_on_cpu_and_cuda()
    data = get_data("cifar10", train_size=a.train_size, val_size=500, test_size=1000, device="cuda",
                    root=a.data_root, download=False)
    recipe = Recipe(epochs=3, batch_size=512, lr=0.2, schedule="onecycle", nesterov=True)
    with tempfile.TemporaryDirectory() as home:
        t0 = time.perf_counter()
        teacher = get_teacher("resnet20", data, recipe, seed=1, home=home, progress=False, verbose=False)
        print(f"2. teacher resnet20, 3 epochs: {time.perf_counter() - t0:.1f} s, test acc "
              f"{teacher.cache_info['metrics']['acc']:.3f}")
        for name, obj in objectives().items():
            model = build("resnet8x4", data.num_classes, seed=0, device="cuda")
            t0 = time.perf_counter()
            h = fit(model, data, recipe, objective=obj, teacher=teacher if obj.needs_teacher else None,
                    progress=False, verbose=False)
            last = h.iloc[-1]
            stats = [c for c in h.columns if c.startswith("train_") and c not in ("train_loss", "train_acc")]
            assert torch.isfinite(torch.tensor(h["train_loss"].values)).all(), name
            print(f"  {name:11s} {time.perf_counter() - t0:5.1f} s, loss {last.train_loss:.3f}, test acc "
                  f"{last.test_acc:.3f}, stats {[f'{c}={last[c]:.3f}' for c in stats]}")
        ck = f"{home}/resume.pt"
        model = build("resnet8x4", data.num_classes, seed=0, device="cuda")
        fit(model, data, Recipe(epochs=2, batch_size=512, lr=0.2, schedule="onecycle"), checkpoint=ck,
            progress=False, verbose=False)
        model2 = build("resnet8x4", data.num_classes, seed=0, device="cuda")
        h = fit(model2, data, Recipe(epochs=2, batch_size=512, lr=0.2, schedule="onecycle"), checkpoint=ck,
                progress=False, verbose=False)
        print(f"3. resume from a finished CUDA checkpoint: {len(h)} epochs of history, no new training")
    print("cuda_check: all passed")


if __name__ == "__main__":
    main()
