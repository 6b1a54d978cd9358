"""Run directories: where a training run keeps everything it produces.

    runs/<env-id>/<timestamp-or-name>/
        config.json     the config, session kind, environment id, device and command line
        metrics.csv     one row per update (`runtime.ppo.metrics.CSV_COLUMNS`)
        trainlog.json   the evaluation curve in TorchLean's widget format; trainlog.png its plot
        metrics.png     losses, entropy, KL, clip fraction, explained variance, episode returns
        last.pt         checkpoint every `checkpoint_every` updates and at the end (Ctrl-C too)
        best.pt         checkpoint of the best greedy evaluation so far
        summary.json    solved or not, steps and wall time to solve, final and best return
        tensorboard/    TensorBoard events, when the `tensorboard` extra is installed

Every path is checked writable before training starts (`check_writable`), so a run never
fails at its end for want of a place to save.
"""

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checked_rl.runtime.ppo.trainlog import atomic_write_bytes

__all__ = [
    "DEFAULT_ROOT",
    "RunDir",
    "check_file_path",
    "check_writable",
    "default_run_dir",
    "resolve_resume",
]

DEFAULT_ROOT = Path("runs")
"""Run directories go under this folder of the current directory unless `--run-dir` says."""


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory (see the module docstring)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def trainlog(self) -> Path:
        return self.root / "trainlog.json"

    @property
    def metrics_plot(self) -> Path:
        return self.root / "metrics.png"

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    def write_json(self, path: Path, document: Any) -> None:
        """Write `document` as indented JSON to `path` (a file of this directory), atomically."""
        atomic_write_bytes(path, (json.dumps(document, indent=2) + "\n").encode())

    def read_summary(self) -> dict[str, Any]:
        """`summary.json`, as written at the end of the run."""
        return json.loads(self.summary.read_text())


def default_run_dir(env_id: str, name: str | None = None, root: Path = DEFAULT_ROOT) -> Path:
    """`root/<env-id>/<name>`, or `root/<env-id>/<UTC timestamp>` (made unique) without name.

    The environment id keeps letters, digits, `.`, `_` and `-`; anything else (the `:` of a
    module id, a `/` of a namespace) becomes `_`.
    """
    folder = root / re.sub(r"[^A-Za-z0-9._-]", "_", env_id)
    if name is not None:
        return folder / name
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidate, n = folder / stamp, 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stamp}-{n}"
    return candidate


def check_file_path(option: str, value: str) -> Path:
    """`value` as the path of a file to write, or a ValueError naming `option`."""
    if not value or not value.strip():
        raise ValueError(f"{option} must name a file, got {value!r}")
    path = Path(value)
    if value.endswith(("/", os.sep)) or path.name in ("", ".", "..") or path.is_dir():
        raise ValueError(f"{option} must name a file, got {value!r}, a directory")
    return path


def check_writable(directory: Path, what: str) -> None:
    """Create `directory` (and its parents) and write and remove a file in it; an OSError
    naming `what` if any of that fails."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as error:
        raise OSError(
            f"{what} {directory} is not writable: {error.strerror or error}"
        ) from None


def resolve_resume(value: str) -> tuple[Path, Path | None]:
    """`--resume RUN_DIR_OR_CHECKPOINT` as (checkpoint, run directory or None).

    A directory means its `last.pt`; a file inside a run directory (one with `config.json`)
    continues into that directory; any other file continues into a new run directory.
    """
    if not value:
        raise ValueError("--resume must name a run directory or a checkpoint, got ''")
    path = Path(value)
    if path.is_dir():
        run = RunDir(path)
        if not run.last.is_file():
            raise ValueError(f"--resume {value}: the directory has no checkpoint {run.last.name}")
        return run.last, path
    if not path.is_file():
        raise ValueError(f"--resume {value}: no such run directory or checkpoint")
    parent = path.parent
    return path, (parent if RunDir(parent).config.is_file() else None)
