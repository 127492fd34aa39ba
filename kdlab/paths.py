"""Where datasets and checkpoints live.

- datasets: `KDLAB_DATA`, else the `data/` folder of this checkout (editable install), else `~/.cache/kdlab/data`;
- checkpoints and cached teachers: `KDLAB_HOME`, else `<datasets folder>/checkpoints`.
"""
import os
from pathlib import Path

_CHECKOUT_DATA = Path(__file__).resolve().parents[1] / "data"


def data_dir() -> Path:
    if os.environ.get("KDLAB_DATA"):
        return Path(os.environ["KDLAB_DATA"]).expanduser()
    if _CHECKOUT_DATA.is_dir():
        return _CHECKOUT_DATA
    return Path.home() / ".cache" / "kdlab" / "data"


def home_dir() -> Path:
    if os.environ.get("KDLAB_HOME"):
        return Path(os.environ["KDLAB_HOME"]).expanduser()
    return data_dir() / "checkpoints"
