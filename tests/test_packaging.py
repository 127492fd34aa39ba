"""pyproject.toml, environment.yml and the README agree."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_installs_what_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = {r.split("#")[0].strip() for r in project["dependencies"] + extras["lab"] + extras["test"]}
    import yaml  # PyYAML comes with JupyterLab (jupyter-events)
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert conda == ["python>=3.11", "pip"] and project["requires-python"] == ">=3.11"
    assert "-e ." in pip  # the package itself
    assert set(pip) - {"-e ."} == declared, "environment.yml and pyproject.toml list different packages or versions"


def test_required_runtime_and_test_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    assert {"torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn", "tqdm", "ipywidgets"} <= runtime
    # a hosted runtime runs its own Jupyter: installing the library must not upgrade its server or kernel
    assert not runtime & {"jupyterlab", "ipykernel", "notebook", "ipython", "jupyter-server"}
    assert {_name(r) for r in project["optional-dependencies"]["lab"]} == {"jupyterlab", "ipykernel"}
    widgets = next(r for r in project["dependencies"] if _name(r) == "ipywidgets")
    assert ">=7.7" in widgets and "!=8.1.9" in widgets  # Colab ships 7.7.1; 8.1.9 renders nothing in VS Code
    test = project["optional-dependencies"]["test"]
    assert {_name(r) for r in test} >= {"pytest", "pytest-xdist", "nbval", "ipykernel", "jupyterlab"}
    assert any(r.replace(" ", "").startswith("nbval>=0.11") for r in test)  # 0.10 breaks with pytest >= 8.1
    # sweeps are optional: the library imports submitit only when one is submitted; the tests run them
    assert {_name(r) for r in project["optional-dependencies"]["cluster"]} == {"submitit", "nbclient", "ipykernel"}
    assert not runtime & {"submitit", "nbclient"} and {_name(r) for r in test} >= {"submitit", "nbclient", "psutil"}
    # the site builds from its own extra; the tests build it too
    site = {_name(r) for r in project["optional-dependencies"]["site"]}
    assert site == {"sphinx", "myst-nb", "sphinx-book-theme", "sphinx-mathjax-offline"} and {_name(r) for r in test} >= site
    assert not runtime & site


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- commands -->\s*```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, "README must hold its commands in a fenced block after <!-- commands -->"
    commands = [c for c in block.group(1).splitlines() if c.strip() and not c.strip().startswith("#")]
    assert len(commands) == 2 and "jupyter lab notebooks/" in commands[0] and "pytest" in commands[1]
    assert '".[lab]"' in commands[0]  # the course's JupyterLab comes with the lab extra
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci, ".ci/run must run the README's test command word for word"


def test_readme_lists_every_notebook_and_marks_the_rest_planned():
    readme = (ROOT / "README.md").read_text()
    existing = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for name in existing:
        assert name in readme, f"{name} exists but the README does not list it"
    planned = re.findall(r"^\|\s*(0\d)\s*\|.*\(planned\)", readme, re.M)
    listed = re.findall(r"^\|\s*(0\d)\s*\|", readme, re.M)
    assert len(listed) == 7
    for num in planned:
        assert not any(n.startswith(num + "_") for n in existing), f"notebook {num} exists but is marked planned"
