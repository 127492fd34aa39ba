"""Sweeps: a notebook's trainings as jobs on a scheduler, through submitit (SLURM on a cluster, or the GPUs of one
machine), so that a `full` run takes GPU-hours spread over many GPUs instead of days on one.

    python -m kdlab sweep 05 --scale full --executor slurm --jobs 8 --partition gpu --hours 12
    python -m kdlab sweep 02 --scale reduced --executor local --jobs 4      # four GPUs of one machine
    python -m kdlab sweep 05 --scale full --status                          # how far it got (from the logs)

Then open the notebook as usual, with the same KDLAB_HOME and scale: it finds every run in the run cache and
trains nothing.

How the work is split. A notebook's runs depend on one another (a teacher before the students it teaches, one
born-again generation before the next), so a job is not one run: every job executes the whole notebook,
headless, against the shared run cache, and the runs are claimed one at a time. Whichever job reaches a run
first trains it (`kdlab.train.fit` holds a lock beside its checkpoint); a job that finds a run taken trains the
next free one and loads the taken one once it is done (`kdlab.experiment.run_arms`). N jobs thus split every
comparison's runs N ways. A killed job's run resumes from its last saved epoch in the next job that reaches it,
and a sweep submitted again trains only what is missing: finished runs load in seconds.

What it needs: KDLAB_HOME on a file system that every job sees, with working `flock` locks (a local disk, NFSv4,
Lustre mounted with `flock`), and the same kdlab checkout, environment and data on every node. Each job's
executed notebook and submitit's logs are kept in `<KDLAB_HOME>/sweeps/<notebook>-<scale>/<when submitted>/`.

submitit and nbclient are the optional extra `cluster`: `pip install -e ".[cluster]"`.
"""
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kdlab.paths import home_dir

EXECUTORS = ("slurm", "local", "debug")
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"

# the line run_arms prints for each run, and get_teacher's for each teacher
_RUN = re.compile(r"^\S.*? seed \d+: (?:(?:test|val) acc [\d.]+%|not evaluated)  \(\d+ s\)(?P<how>.*)$")
_TEACHER = re.compile(r"^(?:training (?:student-friendly )?teacher|teacher \S+ (?:loaded from cache|taken from))")


def _submitit():
    try:
        import nbclient  # noqa: F401  (the jobs execute the notebook with it)
        import submitit
    except ImportError as e:
        raise RuntimeError(f"sweeps need submitit and nbclient ({e.name} is missing): pip install -e \".[cluster]\" "
                           f"in the kdlab checkout") from None
    return submitit


def notebook_path(notebook) -> Path:
    """One of the seven by number or name ('05', 'knowledge_adjustment'), or the path of a notebook of your own."""
    from kdlab.plans import resolve
    if str(notebook).endswith(".ipynb") and Path(notebook).is_file():
        return Path(notebook).resolve()
    path = NOTEBOOKS_DIR / f"{resolve(notebook)}.ipynb"
    if not path.is_file():
        raise ValueError(f"{path} is missing: the notebooks come with a checkout of kdlab (git clone, then "
                         f"pip install -e \".[cluster]\"), not with the installed package")
    return path


def sweep_folder(notebook: Path, scale: str, home=None) -> Path:
    """Where the sweeps of this notebook at this scale keep their jobs' logs and notebooks, one folder each."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in notebook.stem)
    return Path(home or home_dir()) / "sweeps" / f"{safe}-{scale}"


def latest(notebook, scale: str, home=None) -> Path:
    """The folder of the last sweep submitted for this notebook and scale."""
    sweeps = sorted(p for p in sweep_folder(notebook_path(notebook), scale, home).glob("*-*") if p.is_dir())
    if not sweeps:
        raise ValueError(f"no sweep of {notebook} at scale {scale} was submitted with this KDLAB_HOME "
                         f"({sweep_folder(notebook_path(notebook), scale, home)})")
    return sweeps[-1]


def count(lines) -> dict:
    """How many runs and teachers the output lines say were trained, resumed and loaded."""
    n = {"trained": 0, "resumed": 0, "loaded": 0, "teachers trained": 0, "teachers loaded": 0}
    for line in lines:
        if m := _RUN.match(line):
            how = m["how"]
            n["loaded" if "loaded" in how else "resumed" if "resumed" in how else "trained"] += 1
        elif _TEACHER.match(line):
            n["teachers trained" if line.startswith("training") else "teachers loaded"] += 1
    return n


def run_notebook(notebook: str, scale: str, home: str, output: str) -> dict:
    """One job: executes the notebook top to bottom in a fresh kernel with KDLAB_SCALE=scale and KDLAB_HOME=home,
    prints each cell's printed lines as they come (the job's log), saves the executed notebook as `output` (also
    when a cell fails) and returns what it trained and loaded. A failing cell raises RuntimeError naming it."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    lines = []

    def printed(cell, cell_index, **_):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                print(out["text"], end="" if out["text"].endswith("\n") else "\n", flush=True)
                lines.extend(out["text"].splitlines())

    client = NotebookClient(nb, timeout=None, kernel_name="python3", on_cell_executed=printed,
                            resources={"metadata": {"path": str(Path(notebook).parent)}})
    t0 = time.monotonic()
    try:
        client.execute(env={**os.environ, "KDLAB_SCALE": scale, "KDLAB_HOME": home, "KDLAB_PROGRESS": "0"})
    except CellExecutionError as e:
        ename, evalue = getattr(e, "ename", "Error"), getattr(e, "evalue", str(e).splitlines()[-1])
        raise RuntimeError(f"{Path(notebook).name} stopped in a cell with {ename}: {evalue} (the executed notebook: "
                           f"{output})") from None
    finally:
        fd, tmp = tempfile.mkstemp(dir=Path(output).parent, prefix=f".{Path(output).name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            nbformat.write(nb, f)
        os.replace(tmp, output)
    return {**count(lines), "seconds": round(time.monotonic() - t0, 1), "output": output}


@dataclass
class Sweep:
    notebook: Path
    scale: str
    folder: Path
    executor: str
    jobs: list = field(default_factory=list)

    def logs(self) -> list:
        return sorted((self.folder / "submitit").glob("*_log.out"))

    def progress(self) -> str:
        return progress(self.folder)

    def wait(self, interval: float = 30.0, say=print) -> list:
        """Waits for every job, saying what changed; returns one dict per job: its counts, or {"error": ...}."""
        results, last = [None] * len(self.jobs), None
        while any(r is None for r in results):
            for i, job in enumerate(self.jobs):
                if results[i] is None and (self.executor == "debug" or job.done()):
                    error = job.exception()  # runs a debug job in this process; never drops into a debugger
                    results[i] = {"error": _last_line(error)} if error else job.result()
                    say(f"job {i}: " + (f"failed: {results[i]['error']}" if error else
                                        ", ".join(f"{v} {k}" for k, v in results[i].items() if k != "output")))
            now = self.progress()
            if now != last and self.executor != "debug":
                say(now)
                last = now
            if any(r is None for r in results):
                time.sleep(interval)
        return results


def _last_line(error) -> str:
    text = str(error).strip()
    # submitit wraps a job's exception with its traceback: the exception's own line is the last one
    return text.splitlines()[-1] if text else type(error).__name__


def progress(folder: Path) -> str:
    """What the jobs' logs in a sweep folder say so far, in one line."""
    logs = sorted((Path(folder) / "submitit").glob("*_log.out"))
    if not logs:
        return f"no job has started yet ({folder})"
    n = count(line for log in logs for line in log.read_text(errors="replace").splitlines())
    done = len(list(Path(folder).glob("job*.ipynb")))
    return (f"{n['trained']} runs trained, {n['resumed']} resumed, {n['loaded']} loaded; {n['teachers trained']} "
            f"teachers trained; {done} of the jobs' notebooks saved ({len(logs)} logs in {folder / 'submitit'})")


def check(notebook, scale: str, executor: str, jobs: int, hours: float):
    """Every argument of a sweep checked before anything is printed or submitted: (submitit, notebook path)."""
    from kdlab.scale import SCALES
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r} is not one of {', '.join(SCALES)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
        raise ValueError(f"hours (each job's time limit) must be a number > 0, got {hours!r}")
    return _submitit(), notebook_path(notebook)


def submit(notebook, scale: str, executor: str = "local", jobs: int = 2, *, home=None, hours: float = 24.0,
           partition: str | None = None, cpus: int | None = None, gpus: int | None = None) -> Sweep:
    """Submits `jobs` jobs that each execute the notebook at `scale`, sharing its runs (see the module's doc).

    executor: "slurm" (an array job; `partition`, `hours` the time limit, `cpus` per job, `gpus` per job,
    default 1), "local" (this machine; job i sees GPU i modulo the GPUs there, none on a CPU machine) or "debug"
    (in this process, one job after another, when waited for: for tests)."""
    submitit, path = check(notebook, scale, executor, jobs, hours)
    home = Path(home or home_dir()).resolve()
    folder = sweep_folder(path, scale, home) / time.strftime("%Y%m%d-%H%M%S")
    while folder.exists():  # two sweeps in one second
        folder = folder.with_name(folder.name + "x")
    folder.mkdir(parents=True)
    logs = folder / "submitit"
    args = [(str(path), scale, str(home), str(folder / f"job{i}.ipynb")) for i in range(jobs)]
    sweep = Sweep(path, scale, folder, executor)
    if executor == "slurm":
        ex = submitit.AutoExecutor(folder=logs, cluster="slurm")
        ex.update_parameters(name=f"kdlab-{path.stem}-{scale}", timeout_min=int(hours * 60),
                             gpus_per_node=1 if gpus is None else gpus, cpus_per_task=cpus or 8,
                             slurm_array_parallelism=jobs, **({"slurm_partition": partition} if partition else {}))
        sweep.jobs = ex.map_array(run_notebook, *zip(*args))
    elif executor == "local":
        import torch
        visible = torch.cuda.device_count()
        for i, a in enumerate(args):
            ex = submitit.LocalExecutor(folder=logs)
            ex.update_parameters(timeout_min=hours * 60, gpus_per_node=1 if visible else 0,
                                 visible_gpus=(i % visible,) if visible else ())
            sweep.jobs.append(ex.submit(run_notebook, *a))
    else:
        ex = submitit.DebugExecutor(folder=logs)
        sweep.jobs = [ex.submit(run_notebook, *a) for a in args]
    return sweep
