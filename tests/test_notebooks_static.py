"""The committed notebooks, read without a kernel: each carries one clean top-to-bottom run with a run card
at the scale it states, and has what every concept notebook must have."""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _code(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def _text(output):
    if output["output_type"] == "stream":
        return "".join(output["text"])
    return "".join(output.get("data", {}).get("text/plain", ""))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_outputs_are_one_clean_run(path):
    nb = json.loads(path.read_text())
    code = _code(nb)
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: execution counts {counts} are not one top-to-bottom run"
    for c in code:
        for o in c.get("outputs", []):
            assert o["output_type"] != "error" or "raises-exception" in c["metadata"].get("tags", []), \
                f"{path.name}: a cell ends in {o.get('ename')}: {o.get('evalue')}"
    card = "".join(_text(o) for o in code[-1].get("outputs", []))
    assert "run card" in card and "git_commit" in card, f"{path.name}: the last cell must show kdlab.run_card()"
    scale = re.search(r"scale\s+(\w+)", card).group(1)
    assert scale in ("laptop", "reduced", "full"), f"{path.name}: committed outputs must not be a {scale} run"
    banner = "".join(_text(o) for c in code[:4] for o in c.get("outputs", []))
    assert f"kdlab scale: {scale}" in banner, f"{path.name}: the scale must be printed before training"


def _install_cell(path):
    return "".join(_code(json.loads(path.read_text()))[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_first_cell_says_how_to_install_on_a_hosted_runtime(path):
    nb = json.loads(path.read_text())
    cell = "".join(_code(nb)[0]["source"])
    assert cell == _install_cell(NOTEBOOKS[0]), f"{path.name}: its install cell differs from 01's"
    assert "raise SystemExit" in cell
    # Colab opens it on a GPU runtime
    assert nb["metadata"].get("accelerator") == "GPU" and nb["metadata"]["colab"]["gpuType"], path.name


@pytest.mark.parametrize("inside_checkout", [True, False])
def test_install_cell_stops_with_the_command_to_run(tmp_path, inside_checkout):
    """Without kdlab importable (python -S: no site-packages), the cell exits non-zero with the exact command:
    `%pip install -e <the checkout>` when the notebook lies in one, else with what PATH must be."""
    import subprocess
    import sys
    root = NOTEBOOKS[0].parents[1]
    cwd = root / "notebooks" if inside_checkout else tmp_path
    done = subprocess.run([sys.executable, "-S", "-c", _install_cell(NOTEBOOKS[0])], cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "kdlab is not installed in this kernel" in done.stderr, done
    expected = f"%pip install -e {root}\n" if inside_checkout else "%pip install -e PATH    (PATH: the folder"
    assert expected in done.stderr and "restart the kernel" in done.stderr
    # with kdlab importable, the cell does nothing
    ok = subprocess.run([sys.executable, "-c", _install_cell(NOTEBOOKS[0])], cwd=cwd, capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0 and ok.stdout == ok.stderr == "", ok


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_the_standard_parts(path):
    nb = json.loads(path.read_text())
    tags = [t for c in nb["cells"] for t in c["metadata"].get("tags", [])]
    assert "parameters" in tags, f"{path.name}: no cell tagged 'parameters'"
    checked = [c for c in nb["cells"] if "nbval-check-output" in c["metadata"].get("tags", [])]
    printed = [line for c in _code(nb) for o in c.get("outputs", []) for line in _text(o).splitlines()]
    assert any(line.startswith("claim: ") for line in printed), f"{path.name}: checks no claim"
    for c in checked:  # printed claims must read the same at every scale: no numbers that vary by run
        for o in c.get("outputs", []):
            for line in _text(o).splitlines():
                assert line.startswith("claim: ") and line.endswith(": holds"), f"{path.name}: checked cell prints {line!r}"
                # a claim not asserted at smoke prints another line there, so nbval would compare unlike lines
                assert "reported at" not in line and "smoke" in line, f"{path.name}: {line!r} is not asserted at smoke"
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for part in ("## Exercises", "## What to try next", "## References", "## Pitfalls"):
        assert part in markdown, f"{path.name}: no '{part}' section"
    assert "$$" in markdown, f"{path.name}: the math is missing"


# Notebooks whose committed run does not (yet) show its headline holding, and why. Strict: once one does, the test
# passes and it must leave this table.
HEADLINE_PENDING = {
    "06_dynamic_temperature.ipynb": "no headline yet: a validation pilot at T0 = 4 (3 seeds) found no per-sample "
                                    "temperature form beating the fixed one (FLSW with T0^2 -4.8 points, with "
                                    "T_x^2 +0.1, CWSM -1.0)",
    "07_student_friendly_teachers.ipynb": "headline does not hold at laptop: students of the student-friendly "
                                          "teacher (lambda_KL 0.3, chosen on a validation pilot) -1.3 points "
                                          "[-2.0, -0.6] against the standard teacher's, 5 seeds",
}


def _headline_params():
    for p in NOTEBOOKS:
        reason = HEADLINE_PENDING.get(p.name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(p, id=p.name, marks=marks)


@pytest.mark.parametrize("path", list(_headline_params()))
def test_committed_run_shows_its_headline_holding(path):
    nb = json.loads(path.read_text())
    code = _code(nb)
    text = "\n".join(_text(o) for c in code for o in c.get("outputs", []))
    lines = [l for l in text.splitlines() if l.startswith("headline")]
    assert len(lines) == 1, f"{path.name}: {len(lines)} headline lines in the committed outputs (one expected)"
    assert re.match(r"headline: .+: holds \(.+ over \d+ paired seeds\)$", lines[0]), \
        f"{path.name}: the committed run's headline does not hold: {lines[0]!r}"
    # stated in the prose before the training that tests it
    cells = nb["cells"]
    first_markdown = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                          and "**Headline**" in "".join(c["source"]))
    printed = next(i for i, c in enumerate(cells) if c["cell_type"] == "code"
                   and "headline(" in "".join(c["source"]))
    assert first_markdown < printed, f"{path.name}: the headline must be stated before the run that tests it"


def test_a_notebook_alone_under_pytest_runs_at_smoke(tmp_path):
    """`pytest notebooks/01_dark_knowledge.ipynb` loads the root conftest.py, not tests/conftest.py: without a
    scale of its own the notebook would run at the machine's default (laptop: ten minutes, not one)."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "KDLAB_SCALE"}
    probe = tmp_path / "test_probe.py"
    probe.write_text("import os\n\ndef test_scale():\n    assert os.environ['KDLAB_SCALE'] == 'smoke'\n")
    conftest = (Path(__file__).resolve().parents[1] / "conftest.py").read_text()
    (tmp_path / "conftest.py").write_text(conftest)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                        str(probe)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
