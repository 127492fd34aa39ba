"""python -m kdlab: info, scales, data, bench (its quick CPU form: a benchmark is not a timed test)."""
import re
import subprocess
import sys

import pytest

import kdlab
from kdlab.__main__ import main


def test_info_prints_the_run_card(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for field in ("python", "torch", "cuda", "device", "git_commit", "scale", "wall_time", "KDLAB_DATA"):
        assert field in out
    assert "kdlab scale:" in out


def test_run_card_fields():
    card = kdlab.run_card(seed=3, scale="smoke")
    assert card.seed == 3 and card.scale == "smoke" and card.torch and card.device.split(":")[0] in ("cpu", "cuda")
    assert "Run card" in card._repr_markdown_() and "seed" in str(card)


def test_scales_and_unknown_command(capsys):
    assert main(["scales"]) == 0
    assert "reduced" in capsys.readouterr().out
    assert main(["nope"]) == 2


def test_data_command_reports_ready(capsys):
    assert main(["data", "cifar10"]) == 0
    assert "cifar10: 50000 train / 10000 test images, 10 classes" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_prints_both_pipelines_and_the_ratio_last():
    r = subprocess.run([sys.executable, "-m", "kdlab", "bench", "--quick", "--device", "cpu", "--workers", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert re.fullmatch(r"speedup: \d+\.\d\dx", lines[-1]), r.stdout
    assert any("kdlab" in l and "images/s" in l for l in lines)
    assert any("conventional" in l and "images/s" in l for l in lines)


@pytest.mark.slow
def test_bench_suite_quick_form_prints_every_row():
    r = subprocess.run([sys.executable, "-m", "kdlab", "bench", "--suite", "--quick", "--device", "cpu",
                        "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "one KD epoch resnet14 -> resnet8" in r.stdout and "full RepDistiller schedule" in r.stdout
    assert re.search(r"\d+\.\dx", r.stdout) and "benchmarks/RESULTS.md" in r.stdout


@pytest.mark.parametrize("argv, says", [
    (["data", "cifar1O"], "unknown dataset 'cifar1O'"),
    (["info", "--verbose"], "'info' takes no arguments"),
    (["scales", "laptop"], "'scales' takes no arguments"),
])
def test_user_errors_print_one_line_not_a_traceback(argv, says, capsys):
    from kdlab.__main__ import main
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdlab: error: ") and says in err and "Traceback" not in err


def test_bench_refuses_a_negative_step_count():
    from kdlab.bench import run
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got -1"):
        run(steps=-1)
