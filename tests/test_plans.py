"""Notebook plans and their time estimates (kdlab.plans, kdlab.costs, python -m kdlab plan).

The plans restate what each notebook's setup cell trains; the committed laptop runs printed one line per run, so
the plans are checked against them run for run, and their time estimates against the seconds those runs took
where the machine that made them has a row in the cost table."""
import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from kdlab import costs, plans
from kdlab.__main__ import main

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RUN_LINE = re.compile(r"^(.*?)\s+seed (\d+): (?:test|val) acc [\d.]+%  \((\d+) s\)", re.M)


def _outputs(nb: str) -> str:
    cells = json.loads((NOTEBOOKS / f"{nb}.ipynb").read_text())["cells"]
    out = []
    for c in cells:
        for o in c.get("outputs", []):
            t = o.get("text") or o.get("data", {}).get("text/plain", "")
            out.append("".join(t) if isinstance(t, list) else t)
    return "\n".join(out)


def _committed_runs(nb: str) -> dict:
    """(arm, seed) -> seconds of each student run the committed notebook printed (a run loaded again later in the
    same notebook, e.g. 06's followed run, counts once)."""
    runs = {}
    for m in RUN_LINE.finditer(_outputs(nb)):
        runs.setdefault((m[1].strip(), int(m[2])), int(m[3]))
    return runs


@pytest.mark.parametrize("nb", plans.NOTEBOOKS)
def test_laptop_plan_lists_the_runs_the_committed_notebook_made(nb):
    committed = _committed_runs(nb)
    planned = [t for t in plans.trainings(nb, "laptop") if t.kind == "student"]
    assert len(planned) == len(committed), f"{nb}: the plan lists {len(planned)} student runs, the committed run " \
                                           f"printed {len(committed)}"
    # the same seeds, as often: a plan with one arm too many on seed 4 and one too few on seed 0 is wrong too
    assert Counter(int(t.what.rsplit("seed ", 1)[1]) for t in planned) == Counter(s for _, s in committed)
    committed_epochs = {"01_dark_knowledge": 6, "02_temperature": 4, "03_self_teaching": 30}.get(nb)
    if committed_epochs:  # said in the notebooks' plan comments
        assert {t.epochs for t in planned} == {committed_epochs}


@pytest.mark.parametrize("nb", [nb for nb in plans.NOTEBOOKS
                                if re.search(r"device\s+cpu: AMD EPYC", _outputs(nb))])
def test_estimate_is_near_what_the_committed_runs_took(nb):
    """Where the committed run's CPU has a measured row: the students' estimated seconds within [2/3, 3/2] of the
    seconds the committed runs printed (measured: 1.11 for 06 and 1.26 for 04, whose epochs of 1,500 images are
    the shortest)."""
    committed = sum(_committed_runs(nb).values())
    rows = costs.table(home="/nonexistent-kdlab-home")
    device = next(r.device for r in rows if r.device.startswith("cpu: AMD EPYC"))
    precision = re.search(r"precision\s+(bf16|fp16|fp32)", _outputs(nb))[1]  # the run card's
    estimate = sum(plans.seconds(t, device, rows, precision) for t in plans.trainings(nb, "laptop")
                   if t.kind == "student")
    assert 2 / 3 <= estimate / committed <= 3 / 2, (nb, estimate, committed)


def test_shared_trainings_are_counted_once_by_the_first_notebook():
    plan04 = plans.plan("04", "laptop", devices=[], home="/nonexistent-kdlab-home")
    loaded = plan04[plan04["from"] != "trained here"]["training"].tolist()
    # notebook 03 makes the self-teacher and the baseline and Tf-KD self runs on seeds 0-4 with the same settings
    assert sorted(loaded) == sorted(["self-teacher resnet8"] + [f"{a} seed {s}" for a in ("baseline", "Tf-KD self")
                                                                for s in range(5)])
    plan07 = plans.plan("07", "laptop", devices=[], home="/nonexistent-kdlab-home")
    loaded = set(plan07[plan07["from"] != "trained here"]["training"])
    # 01's teacher; 05's KD (T = 4, 0.1/0.9, same teacher, 10 epochs) on seeds 0-3 and its baseline on 0-2
    assert loaded == {"teacher resnet20"} | {f"KD <- standard seed {s}" for s in range(4)} | \
        {f"baseline seed {s}" for s in range(3)}
    # at reduced 05's teacher stops after 5 epochs, so 07's KD runs are its own
    plan07 = plans.plan("07", "reduced", devices=[], home="/nonexistent-kdlab-home")
    assert set(plan07[plan07["from"] != "trained here"]["training"]) == {"teacher resnet32x4"}
    assert plans.plan("01", "laptop", devices=[], home="/nonexistent-kdlab-home")["from"].eq("trained here").all()


@pytest.mark.slow
def test_plan_finds_cached_teachers_by_their_exact_key(tmp_path):
    """The teachers notebooks 01 and 03 train at smoke, trained as they train them: the plan finds both, and a
    teacher of another seed is not taken for them."""
    from kdlab import cache, data
    from kdlab.scale import get_scale
    s = get_scale("smoke", announce=False)
    d = data.from_scale(s, device="cpu")
    before = plans.plan("03", "smoke", devices=[], home=tmp_path, look_in_cache=True)
    assert set(before.loc[before["kind"] == "teacher", "in the cache"]) == {"no"}
    cache.get_teacher(s.teacher, d, s.teacher_recipe, scale=s.name, home=tmp_path, verbose=False, progress=False)
    self_recipe = replace(s.student_recipe, epochs=6, augment=False)  # notebook 03's smoke regime
    cache.get_teacher("resnet8", d, self_recipe, seed=100, scale=s.name, home=tmp_path, verbose=False, progress=False)
    cache.get_teacher("resnet8", d, self_recipe, seed=101, scale=s.name, home=tmp_path, verbose=False, progress=False)
    p01 = plans.plan("01", "smoke", devices=[], home=tmp_path, look_in_cache=True)
    assert p01.loc[p01["kind"] == "teacher", "in the cache"].tolist() == ["yes"]
    p03 = plans.plan("03", "smoke", devices=["cpu: test"], home=tmp_path, look_in_cache=True)
    teachers = p03[p03["kind"] == "teacher"].set_index("training")
    assert teachers["in the cache"].to_dict() == {"self-teacher resnet8": "yes", "weak teacher resnet8": "no"}
    assert teachers.loc["self-teacher resnet8", "cpu: test"] == 0.0  # cached: it costs nothing
    assert set(p03.loc[p03["kind"] == "student", "in the cache"]) == {"-"}


def _fake_rows():
    a = costs.Cost("cpu: test", "resnet8", "fp32", 128, 100.0, 1000.0, 200, 40, 0.025, float("inf"), "measured")
    b = replace(a, arch="resnet20", infer_ips=500.0, augment_ips=1000.0)
    return [a, b]


def test_seconds_hand_computed():
    rows = _fake_rows()
    t = plans.Training("x", "resnet8", epochs=2, train_images=1000, batch_size=128, eval_images=500, evaluations=2)
    # 2 x 1,000 images at 100/s, then 2 x 500 evaluated at 1,000/s
    assert plans.seconds(t, "cpu: test", rows) == pytest.approx(20 + 1)
    kd = replace(t, teacher="resnet20")  # + the teacher's forward at 500/s, + its predictions on 500 images once
    assert plans.seconds(kd, "cpu: test", rows) == pytest.approx(21 + 2000 / 500 + 500 / 500)
    student_of_20 = replace(t, arch="resnet20")  # augmentation at 1,000/s on top of training at 100/s
    assert plans.seconds(student_of_20, "cpu: test", rows) == pytest.approx(2000 * (1 / 100 + 1 / 1000) + 1000 / 500)
    big = replace(t, pixels=4.0)  # 64x64 images cost 4 times as much on a CPU row
    assert plans.seconds(big, "cpu: test", rows) == pytest.approx(4 * 21)


def test_gpu_model_reproduces_the_two_measured_h100_steps():
    """The fit itself: the KD step resnet32x4 -> resnet8x4 that the two constants came from, at both batch sizes."""
    rows = costs.table(home="/nonexistent-kdlab-home")
    for batch, measured in costs.H100_KD_STEP_SECONDS.items():
        s = costs.lookup(rows, costs.REFERENCE_GPU, "resnet8x4", batch)
        t = costs.lookup(rows, costs.REFERENCE_GPU, "resnet32x4", batch)
        per_op, _ = costs.gpu_constants(rows)
        step = batch / s.train_ips + batch / t.infer_ips + 17 * per_op
        assert step == pytest.approx(measured, rel=1e-9)
        assert "estimate" in s.source


def test_unmeasured_cpu_borrows_a_row_and_says_so():
    r = costs.lookup(_fake_rows(), "cpu: another CPU", "resnet8", 128)
    assert r.train_ips == 100.0 and "estimate" in r.source and "cpu: test" in r.source
    with pytest.raises(KeyError, match="bench --costs"):
        costs.lookup(_fake_rows(), "cpu: test", "resnet56", 128)


def test_a_cpu_is_estimated_from_the_rows_of_the_precision_it_trains_in(monkeypatch, tmp_path):
    """Two 2-core CPUs with one name, one with native bf16 and one training in fp32 at a quarter of the speed:
    each is estimated from its own precision's row, and a machine with only the other's row says so."""
    bf16 = replace(_fake_rows()[0], precision="bf16", train_ips=300.0)
    fp32 = _fake_rows()[0]
    for rows in ([bf16, fp32], [fp32, bf16]):
        assert costs.lookup(rows, "cpu: test", "resnet8", 128, precision="fp32").train_ips == 100.0
        assert costs.lookup(rows, "cpu: test", "resnet8", 128, precision="bf16").train_ips == 300.0
    borrowed = costs.lookup([bf16], "cpu: test", "resnet8", 128, precision="fp32")
    assert borrowed.train_ips == 300.0 and "trains in fp32 and no fp32 row is measured" in borrowed.source
    assert "bf16 row" in borrowed.source and "bench --costs" in borrowed.source
    # another CPU of the same precision is a better guess than this name's other precision
    other = replace(fp32, device="cpu: other", train_ips=90.0)
    assert costs.lookup([bf16, other], "cpu: test", "resnet8", 128, precision="fp32").train_ips == 90.0
    # the plan asks for the precision this machine trains in (KDLAB_PRECISION sets it)
    import torch
    here = costs.device_name(torch.device("cpu"))
    (tmp_path / "costs.json").write_text(json.dumps([
        {**vars(_fake_rows()[0]), "device": here, "precision": p, "train_ips": ips}
        for p, ips in (("bf16", 300.0), ("fp32", 100.0))]))
    t = plans.Training("x", "resnet8", epochs=1, train_images=3000, batch_size=128, eval_images=0, evaluations=0,
                       augment=False)
    rows = costs.table(home=tmp_path)
    planned = {}
    for setting, expected in (("fp32", 30.0), ("bf16", 10.0)):
        monkeypatch.setenv("KDLAB_PRECISION", setting)
        assert plans.trains_in(here) == setting and plans.trains_in("cpu: elsewhere") is None
        assert plans.seconds(t, here, rows, plans.trains_in(here)) == pytest.approx(expected)
        planned[setting] = plans.plan("01", "smoke", [here], home=tmp_path)[here]
    students = plans.plan("01", "smoke", [here], home=tmp_path)["kind"] == "student"  # resnet8, 3x slower in fp32
    assert (planned["fp32"][students] > 1.5 * planned["bf16"][students]).all()


def test_this_machines_rows_replace_the_shipped_ones(tmp_path):
    shipped = costs.table(home=tmp_path)
    mine = replace(shipped[0], train_ips=1.0, source="measured here")
    costs.save([mine], home=tmp_path)
    rows = costs.table(home=tmp_path)
    assert len(rows) == len(shipped)
    key = lambda r: (r.device, r.arch, r.precision)  # noqa: E731
    assert [r for r in rows if key(r) == key(mine)] == [mine]


def test_corrupt_cost_table_says_what_to_do(tmp_path):
    (tmp_path / "costs.json").write_text("[{\"device\": 1}]")
    with pytest.raises(ValueError, match="bench --costs"):
        costs.table(home=tmp_path)


def test_measure_counts_and_times_one_model():
    r = costs.measure("resnet8", "cpu", batch_size=16, steps=1, warmup=0)
    assert r.train_ips > 0 and r.infer_ips > r.train_ips and r.augment_ips > 0
    assert r.ops_train > 3 * r.ops_infer > 0  # forward, backward, optimizer and batching against a forward alone
    assert r.gflops == pytest.approx(0.025, rel=0.05)  # resnet8: about 12.5 M multiply-adds per 32x32 image
    with pytest.raises(ValueError, match="steps"):
        costs.measure("resnet8", "cpu", steps=0)


# Plans over their budget, by the cost table's estimate: at reduced on an H100 every notebook but 03 and 04 is
# estimated above 3 minutes (4-8 minutes). Resizing them waits for timings measured on a GPU.
OVER_BUDGET = {("reduced", nb) for nb in ("01_dark_knowledge", "02_temperature", "05_knowledge_adjustment",
                                          "06_dynamic_temperature", "07_student_friendly_teachers")}


@pytest.mark.parametrize("scale", ["smoke", "laptop", "reduced"])
@pytest.mark.parametrize("nb", plans.NOTEBOOKS)
def test_plan_fits_its_budget(request, monkeypatch, nb, scale):
    # the laptop budget is for a 2-core CPU with native bf16, as the committed runs' EPYC; one that trains in fp32
    # (no AVX512-BF16) is estimated at about 4 times that, whatever machine runs this test
    monkeypatch.setenv("KDLAB_PRECISION", "bf16")
    if (scale, nb) in OVER_BUDGET:
        request.applymarker(pytest.mark.xfail(strict=True, reason="estimated over budget; resizing waits for GPU timings"))
    rows = costs.table(home="/nonexistent-kdlab-home")
    device = costs.REFERENCE_GPU if scale == "reduced" else next(r.device for r in rows if r.device.startswith("cpu"))
    estimate = plans.total(nb, scale, device, home="/nonexistent-kdlab-home")
    assert estimate <= plans.BUDGET_SECONDS[scale], f"{nb} at {scale}: {estimate:.0f} s on {device}"


def test_resolve_names_notebooks():
    assert plans.resolve("5") == plans.resolve("05") == plans.resolve("05_knowledge_adjustment.ipynb") == \
        plans.resolve("knowledge_adjustment") == "05_knowledge_adjustment"
    with pytest.raises(ValueError, match="Did you mean 'temperature'"):
        plans.resolve("temprature")


def test_plan_command(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KDLAB_HOME", str(tmp_path))
    assert main(["plan", "04", "--scale", "laptop"]) == 0
    out = capsys.readouterr().out
    assert "04_drkd_rectification: 22 trainings here, 11 loaded from an earlier notebook" in out
    assert "expected wall time" in out and costs.REFERENCE_GPU in out
    assert main(["plan", "--scale", "full"]) == 0
    out = capsys.readouterr().out
    assert "all seven" in out and " h" in out and "no budget" in out
    assert main(["plan", "99"]) == 2
    assert "unknown notebook '99'" in capsys.readouterr().err
    assert main(["plan", "--scale", "huge"]) == 2
    assert "unknown scale 'huge'" in capsys.readouterr().err
