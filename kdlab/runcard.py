"""The run card: what produced a result (versions, device, git commit, seed, scale, wall time).

Every notebook ends with `kdlab.run_card(seed=..., scale=...)`; `python -m kdlab info` prints the same.
Wall time counts from the first `import kdlab` in the process.
"""
import platform
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


def _git_commit() -> str:
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        if not commit:
            # a copy of a checkout (e.g. sent to a GPU machine) may name the commit it was copied from
            copied = os.environ.get("KDLAB_SOURCE_COMMIT", "").strip()
            return f"{copied} (a copy of this commit, not a checkout)" if copied else "unknown (not a git checkout)"
        # Only changes to code count: a notebook's saved outputs changing (another notebook running) does not
        # change what produced this result.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)*.ipynb", ":(exclude)*.md"], cwd=repo,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + (" (with uncommitted changes to the code)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def made_by(device) -> dict:
    """What trained a saved model, kept beside it: the device's name, the commit, kdlab's and torch's versions."""
    import torch

    import kdlab
    device = torch.device(device)
    name = f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else f"cpu: {_cpu_name()}"
    # plain str: torch.__version__ is a str subclass that weights_only loading refuses
    return {"device": name, "commit": _git_commit(), "kdlab": str(kdlab.__version__), "torch": str(torch.__version__)}


@dataclass
class RunCard:
    kdlab: str
    python: str
    torch: str
    torchvision: str
    cuda: str
    device: str
    threads: int
    precision: str
    git_commit: str
    seed: object
    scale: str
    started: str
    wall_time: str

    def __str__(self):
        width = max(map(len, asdict(self)))
        return "run card\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in asdict(self).items())

    __repr__ = __str__

    def _repr_markdown_(self):
        return "**Run card**\n\n| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in asdict(self).items())

    def to_dict(self):
        return asdict(self)


def run_card(seed=None, scale=None) -> RunCard:
    import torch
    import torchvision

    import kdlab
    from kdlab.scale import resolve_name
    from kdlab.train import precision
    main_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)}"
    else:
        device = f"cpu: {_cpu_name()}"
    cuda = torch.version.cuda or "none (CPU build of torch)"
    if torch.version.cuda and not torch.cuda.is_available():
        cuda += " (no GPU visible: running on the CPU)"
    scale_name = getattr(scale, "name", scale) or resolve_name()
    elapsed = time.time() - kdlab._STARTED
    return RunCard(
        kdlab=kdlab.__version__, python=sys.version.split()[0], torch=torch.__version__,
        torchvision=torchvision.__version__, cuda=cuda, device=device, threads=torch.get_num_threads(), precision=precision(main_device), git_commit=_git_commit(),
        seed=seed if seed is not None else "not given", scale=scale_name,
        started=time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(kdlab._STARTED)),
        wall_time=f"{elapsed / 60:.1f} min" if elapsed >= 60 else f"{elapsed:.1f} s")
