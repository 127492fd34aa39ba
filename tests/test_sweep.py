"""Sweeps through submitit on this CPU: jobs that share a notebook's runs, a killed job resumed bit-identically, a
failing job said while the others finish, and the notebook afterwards loading everything."""
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

submitit = pytest.importorskip("submitit")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
psutil = pytest.importorskip("psutil")

from kdlab import sweep  # noqa: E402
from kdlab.__main__ import main  # noqa: E402

pytestmark = pytest.mark.slow

EPOCHS = 16  # long enough (a fifth of a second an epoch here) to be killed in the middle of the first run


def tiny_notebook(folder: Path, epochs: int = 2, fail_once: bool = False) -> Path:
    """A notebook of four runs (two arms, two seeds) on 200 real CIFAR-10 images; with fail_once, the first
    kernel to run it fails in its second cell (a marker file says it already has)."""
    cells = [nbformat.v4.new_code_cell(
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from kdlab.data import get_data\n"
        "from kdlab.experiment import Arm, run_arms\n"
        "from kdlab.losses import CrossEntropy\n"
        "from kdlab.recipe import Recipe\n"
        "data = get_data('cifar10', train_size=200, val_size=100, test_size=100, device='cpu')\n"
        f"recipe = Recipe(epochs={epochs}, batch_size=50, lr=0.05, schedule='onecycle')")]
    if fail_once:
        cells.append(nbformat.v4.new_code_cell(
            "import os\n"
            "try:\n"
            "    os.close(os.open('failed-once', os.O_CREAT | os.O_EXCL))\n"
            "except FileExistsError:\n"
            "    pass\n"
            "else:\n"
            "    raise RuntimeError('the disk is full')"))
    cells.append(nbformat.v4.new_code_cell(
        "arms = [Arm('hard labels', 'resnet8'), Arm('smoothed', 'resnet8', CrossEntropy(label_smoothing=0.1))]\n"
        "results = run_arms(arms, data, recipe, seeds=(0, 1), progress=False, eval_splits=('val',))"))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def one_thread_jobs(monkeypatch):
    """Jobs and their kernels inherit this environment: one thread each, so that two of them share two cores and
    every run is bit-reproducible on the CPU."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("KDLAB_PROGRESS", "0")


def total(results, key):
    return sum(r[key] for r in results)


def run_files(home: Path) -> dict:
    return {p.name: p for p in sorted((home / "runs").rglob("*.pt"))}


def same_run(a: Path, b: Path):
    """Two run files hold the same model, optimizer and history, up to the wall-clock columns."""
    x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert x["epoch"] == y["epoch"] == EPOCHS
    for k in x["model"]:
        assert torch.equal(x["model"][k], y["model"][k]), f"{a.name}: {k} differs"
    def without_clock(history):
        return [{k: v for k, v in row.items() if not any(c in k for c in ("seconds", "images_per_s"))}
                for row in history]
    assert without_clock(x["history"]) == without_clock(y["history"])


def test_two_local_jobs_split_notebook_05_and_the_notebook_then_trains_nothing(tmp_path, one_thread_jobs):
    s = sweep.submit("05", "smoke", "local", jobs=2, home=tmp_path)
    results = s.wait(interval=1, say=lambda line: None)
    assert all("error" not in r for r in results), results
    # 05 at smoke: one teacher and nine student runs, each trained by exactly one of the two jobs
    assert total(results, "trained") == 9 and total(results, "resumed") == 0
    assert total(results, "loaded") == 9  # every job ends with all nine: the other job's by loading them
    assert total(results, "teachers trained") == 1
    assert all(r["trained"] > 0 for r in results), "one job trained everything: the runs were not shared"
    assert len(list(s.folder.glob("job*.ipynb"))) == 2
    assert "9 runs trained, 0 resumed, 9 loaded; 1 teachers trained" in s.progress()

    # the notebook opened afterwards with the same home and scale finds every run and the teacher
    again = sweep.run_notebook(str(s.notebook), "smoke", str(tmp_path), str(tmp_path / "again.ipynb"))
    assert again["trained"] == again["resumed"] == again["teachers trained"] == 0
    assert again["loaded"] == 9 and again["teachers loaded"] >= 1


def test_a_killed_job_resumes_in_the_next_sweep_and_ends_bit_identical(tmp_path, one_thread_jobs):
    nb = tiny_notebook(tmp_path, epochs=EPOCHS)
    reference = tmp_path / "reference"
    ref = sweep.submit(nb, "smoke", "debug", jobs=1, home=reference).wait(say=lambda line: None)
    assert ref[0]["trained"] == 4

    home = tmp_path / "home"
    job = sweep.submit(nb, "smoke", "local", jobs=1, home=home).jobs[0]
    deadline, killed_at, killed = time.monotonic() + 300, None, []
    while killed_at is None and time.monotonic() < deadline and not job.done():
        for path in (home / "runs").rglob("*.pt") if (home / "runs").is_dir() else []:
            try:
                epoch = torch.load(path, weights_only=True)["epoch"]
            except Exception:  # written as we read: the next look sees it whole
                continue
            if 1 <= epoch < EPOCHS // 2:
                process = psutil.Process(int(job.job_id))  # the job, and the kernel it started
                killed = [*process.children(recursive=True), process]
                for p in killed:
                    p.send_signal(signal.SIGKILL)
                killed_at = epoch
                break
        time.sleep(0.05)
    assert killed_at is not None, "the job finished its first run before it could be killed"
    psutil.wait_procs(killed, timeout=10)
    assert len(run_files(home)) == 1  # the first run, part-trained; nothing else started

    results = sweep.submit(nb, "smoke", "local", jobs=2, home=home).wait(interval=1, say=lambda line: None)
    assert all("error" not in r for r in results), results
    assert total(results, "resumed") == 1 and total(results, "trained") == 3 and total(results, "loaded") == 4
    ours, theirs = run_files(home), run_files(reference)
    assert sorted(ours) == sorted(theirs) and len(ours) == 4
    for name in ours:
        same_run(ours[name], theirs[name])


def test_a_failing_job_reports_its_error_and_the_other_finishes(tmp_path, one_thread_jobs):
    nb = tiny_notebook(tmp_path, fail_once=True)
    s = sweep.submit(nb, "smoke", "debug", jobs=2, home=tmp_path / "home")
    said = []
    results = s.wait(say=said.append)
    assert results[0] == {"error": f"tiny.ipynb stopped in a cell with RuntimeError: the disk is full (the executed "
                                   f"notebook: {s.folder / 'job0.ipynb'})"}
    assert any(line.startswith("job 0: failed: tiny.ipynb stopped in a cell with RuntimeError") for line in said)
    assert results[1]["trained"] == 4 and results[1]["loaded"] == 0
    # the failed job's notebook is kept, with the error in its cell
    failed = nbformat.read(s.folder / "job0.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in failed.cells for o in c.get("outputs", []))


def test_the_command_says_what_is_missing_and_what_is_wrong(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDLAB_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if the cluster extra were not installed
    assert main(["sweep", "05", "--scale", "smoke", "--executor", "debug"]) == 2
    err = capsys.readouterr().err
    assert "sweeps need submitit and nbclient (submitit is missing)" in err
    assert 'pip install -e ".[cluster]"' in err
    monkeypatch.delitem(sys.modules, "submitit")

    assert main(["sweep", "05", "--scale", "smoke", "--executor", "kubernetes"]) == 2
    assert "executor 'kubernetes' is not one of slurm, local, debug" in capsys.readouterr().err
    assert main(["sweep", "05", "--scale", "huge"]) == 2
    assert "scale 'huge' is not one of" in capsys.readouterr().err
    assert main(["sweep", "05", "--scale", "smoke", "--jobs", "0"]) == 2
    assert "jobs must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["sweep", "99", "--scale", "smoke"]) == 2
    assert capsys.readouterr().err.startswith("kdlab: error: ")
    assert main(["sweep", "05", "--scale", "smoke", "--status"]) == 2
    assert "no sweep of 05 at scale smoke was submitted with this KDLAB_HOME" in capsys.readouterr().err
    assert not (tmp_path / "sweeps").exists() or not any((tmp_path / "sweeps").rglob("job*"))


def test_status_reads_the_jobs_logs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDLAB_HOME", str(tmp_path))
    folder = sweep.sweep_folder(sweep.notebook_path("05"), "smoke", tmp_path) / "20261206-010000"
    (folder / "submitit").mkdir(parents=True)
    (folder / "submitit" / "1_0_log.out").write_text(
        "training teacher resnet20 on cifar10 (30 epochs)\n"
        "hard labels              seed 0: test acc 31.0%  (4 s)\n"
        "hard labels              seed 1: test acc 30.0%  (2 s) (resumed: 3 of its epochs were left)\n"
        "KD                       seed 0: test acc 33.0%  (0 s) (loaded: another process made this run meanwhile)\n")
    assert main(["sweep", "05", "--scale", "smoke", "--status"]) == 0
    assert capsys.readouterr().out.startswith("1 runs trained, 1 resumed, 1 loaded; 1 teachers trained; 0 of the "
                                              "jobs' notebooks saved")


def test_a_notebook_path_of_your_own_and_a_missing_one(tmp_path):
    nb = tiny_notebook(tmp_path)
    assert sweep.notebook_path(str(nb)) == nb.resolve()
    assert sweep.notebook_path("05").name == "05_knowledge_adjustment.ipynb"
    with pytest.raises(ValueError):
        sweep.notebook_path("no such notebook")
    with pytest.raises(ValueError, match="hours .* must be a number > 0"):
        sweep.check("05", "smoke", "debug", 1, 0)
