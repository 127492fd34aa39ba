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
    "02_temperature.ipynb": "headline does not hold at laptop: resnet8 at T = 2 minus T = 8 +0.4 points [-0.6, +1.4], "
                            "5 seeds (the validation pilot: +1.9 [-1.8, +5.5])",
    "06_dynamic_temperature.ipynb": "no headline yet: a validation pilot at T0 = 4 (3 seeds) found no per-sample "
                                    "temperature form beating the fixed one (FLSW with T0^2 -4.8 points, with "
                                    "T_x^2 +0.1, CWSM -1.0)",
    "07_student_friendly_teachers.ipynb": "headline does not hold at laptop: students of the student-friendly "
                                          "teacher (lambda_KL 0.3, chosen on a validation pilot) -0.6 points "
                                          "[-1.5, +0.4] against the standard teacher's, 5 seeds",
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
