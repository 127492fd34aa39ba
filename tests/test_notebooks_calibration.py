"""The notebooks' smoke-scale checks are calibrated: each notebook, run at smoke scale with a deliberately broken
training (a model never updated, as at lr = 0; or labels shuffled), must stop at a failed claim.

A check that a broken run passes checks nothing. Every notebook claims right after its first training that the
model learned (`kdlab.compare.claim_learned`: test accuracy at least what guessing reaches once in 100 tries),
asserted at every scale but full, so a broken run stops there, seconds in."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))

BREAKERS = {
    # SGD.step does nothing: every parameter keeps its initial value, exactly what lr = 0 trains
    # (kdlab's Recipe refuses lr = 0 itself, so the break goes around it)
    "never updated": "import torch\n"
                     "torch.optim.SGD.step = lambda self, closure=None: None\n",
    # the training labels are a random permutation of the real ones: nothing to learn that generalises
    "shuffled labels": "import dataclasses, torch, kdlab.data\n"
                       "_from_scale = kdlab.data.from_scale\n"
                       "def _shuffled(*args, **kwargs):\n"
                       "    d = _from_scale(*args, **kwargs)\n"
                       "    g = torch.Generator().manual_seed(12345)\n"
                       "    perm = torch.randperm(len(d.train.labels), generator=g).to(d.train.labels.device)\n"
                       "    return dataclasses.replace(d, train=dataclasses.replace(d.train, labels=d.train.labels[perm]))\n"
                       "kdlab.data.from_scale = _shuffled\n",
}


def _broken(path: Path, breaker: str):
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(BREAKERS[breaker]))
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    return nb


def _stops_at_a_learned_claim(path, breaker, home, monkeypatch):
    monkeypatch.setenv("KDLAB_SCALE", "smoke")
    monkeypatch.setenv("KDLAB_PROGRESS", "0")
    monkeypatch.setenv("KDLAB_HOME", str(home))  # no cached model trained before the break
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = _broken(path, breaker)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError) as err:
        client.execute()
    message = str(err.value)
    assert "claim does not hold in this run" in message and " learned: " in message, \
        f"{path.name} with {breaker}: stopped, but not at a claim that the model learned:\n{message[-1500:]}"
    # and it stopped at the first training, not after a run of minutes: counted over the lesson's cells, those after
    # the install cell, the parameters and the break
    after_break = nb.cells.index(next(c for c in nb.cells if c.source == BREAKERS[breaker])) + 1
    code = [c for c in nb.cells[after_break:] if c.cell_type == "code"]
    ran = [c for c in code if c.get("execution_count")]
    assert len(ran) < len(code) / 2, \
        f"{path.name} with {breaker}: the broken run went through {len(ran)} of {len(code)} cells before a check caught it"


# one class per break: pytest-xdist's loadscope runs the two on separate workers
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
class TestNeverUpdated:
    def test_smoke_checks_fail(self, path, tmp_path, monkeypatch):
        _stops_at_a_learned_claim(path, "never updated", tmp_path / "home", monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
class TestShuffledLabels:
    def test_smoke_checks_fail(self, path, tmp_path, monkeypatch):
        _stops_at_a_learned_claim(path, "shuffled labels", tmp_path / "home", monkeypatch)


def test_the_breakers_break(data):
    """The same two breaks, applied to one training here: accuracy stays at chance, so the tests above fail
    for the reason they name, not because the notebooks would fail anyway."""
    import dataclasses

    import torch

    from kdlab import compare, train
    from kdlab.losses import CrossEntropy
    from kdlab.recipe import Recipe

    recipe = Recipe(epochs=6, batch_size=50, lr=0.1, schedule="onecycle", nesterov=True)
    bound = compare.chance_accuracy(len(data.test.labels), data.num_classes)

    def accuracy(d):
        m = train.build("resnet8", d.num_classes, seed=0)
        train.fit(m, d, recipe, objective=CrossEntropy(), seed=0, progress=False)
        return train.evaluate(m, data, "test")["acc"]

    assert accuracy(data) >= bound  # the unbroken training learns
    g = torch.Generator().manual_seed(12345)
    shuffled = dataclasses.replace(data, train=dataclasses.replace(
        data.train, labels=data.train.labels[torch.randperm(len(data.train.labels), generator=g)]))
    assert accuracy(shuffled) < bound
    step = torch.optim.SGD.step
    try:
        torch.optim.SGD.step = lambda self, closure=None: None
        assert accuracy(data) < bound
    finally:
        torch.optim.SGD.step = step
