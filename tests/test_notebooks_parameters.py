"""A wrong value in a notebook's parameters cell stops the notebook in its setup cell, before any training, with
kdlab's message (what was given and what to write), not a bare Python error minutes later."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

HERE = Path(__file__).resolve().parents[1] / "notebooks"

CASES = [  # notebook, the parameter line as a learner might write it, what the error must say
    ("01_dark_knowledge.ipynb", 'OMITTED_CLASS = "dogg"', "Did you mean 'dog'?"),
    ("02_temperature.ipynb", "TEMPERATURES = 4", "for a single temperature write (4,)"),
    ("02_temperature.ipynb", "TEMPERATURES = (1, 4)", "keep both in TEMPERATURES"),  # the headline needs 2 and 8
]


@pytest.mark.slow
@pytest.mark.parametrize("name, line, says", CASES, ids=[c[1] for c in CASES])
def test_a_bad_parameter_stops_the_setup_cell(name, line, says, tmp_path, monkeypatch):
    monkeypatch.setenv("KDLAB_SCALE", "smoke")
    monkeypatch.setenv("KDLAB_PROGRESS", "0")
    monkeypatch.setenv("KDLAB_HOME", str(tmp_path))  # nothing cached: a training would have to start
    nb = nbformat.read(HERE / name, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(line))
    setup = at + 2  # the cell after the parameters: imports, the scale, the data, the checks of every parameter
    nb.cells = nb.cells[:setup + 1]  # a cell after the setup must not be needed to see the error
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(HERE)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError) as err:
        client.execute()
    message = str(err.value)
    assert says in message, f"{name} with {line}: the error does not say {says!r}:\n{message[-1500:]}"
    failed = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
        o.get("output_type") == "error" for o in c.outputs)]
    assert failed == [setup], f"{name} with {line}: failed in cell {failed}, not in the setup cell {setup}"
    assert not list(tmp_path.rglob("*.pt")), f"{name} with {line}: something was trained before the error"
