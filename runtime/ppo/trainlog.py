"""The training log in TorchLean's widget format, and a PNG plot of its curve.

The JSON is `{"title", "steps", "series": [{"name": "avg_return", "values", "color"}], "notes"}`:
`steps[k]` is the number of environment steps trained on when evaluation `k` ran, and
`values[k]` its average greedy return. `notes` lists the config. Both files are written
atomically (temporary file + `os.replace`), so a reader never sees half a log.
"""

import contextlib
import io
import json
import math
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CURVE_COLOR", "TrainLog", "atomic_write_bytes", "plot_path"]

# The process's file-creation mask, read once at import (reading it means setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)

CURVE_COLOR = "#1f77b4"
"""Colour of the `avg_return` series (matplotlib's first default colour)."""


@dataclass
class TrainLog:
    """Evaluation results of one run, in order.

    >>> log = TrainLog("PPO", notes="seed=0")
    >>> log.append(512, 21.5)
    >>> log.to_dict()["series"][0]["values"]
    [21.5]
    """

    title: str
    notes: str = ""
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def append(self, step: int, avg_return: float) -> None:
        """Record the average return of an evaluation after `step` environment steps."""
        self.steps.append(int(step))
        self.values.append(float(avg_return))

    @property
    def last(self) -> float | None:
        """The latest average return, or None before the first evaluation."""
        return self.values[-1] if self.values else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "title": self.title,
            "steps": list(self.steps),
            "series": [{"name": "avg_return", "values": list(self.values), "color": CURVE_COLOR}],
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> "TrainLog":
        """Parse `to_dict`'s output, checking its structure."""
        expected = {"title", "steps", "series", "notes"}
        if not isinstance(document, Mapping) or set(document) != expected:
            keys = sorted(document) if isinstance(document, Mapping) else type(document).__name__
            raise ValueError(f"training log must have keys {sorted(expected)}, got {keys}")
        series = document["series"]
        if (
            not isinstance(series, list)
            or len(series) != 1
            or not isinstance(series[0], Mapping)
            or series[0].get("name") != "avg_return"
        ):
            raise ValueError(f"training log series must be one 'avg_return' series, got {series}")
        steps = list(document["steps"])
        values = list(series[0]["values"])
        if len(steps) != len(values):
            raise ValueError(
                f"training log has {len(steps)} steps but {len(values)} avg_return values"
            )
        if any(not math.isfinite(v) for v in values):
            raise ValueError(f"training log has non-finite avg_return values: {values}")
        return cls(title=document["title"], notes=document["notes"], steps=steps, values=values)

    def write(self, path: str | os.PathLike[str], *, plot: bool = True) -> None:
        """Write the JSON to `path` and, when `plot`, the curve as a PNG beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write_bytes(path, text.encode())
        if plot:
            self.plot(plot_path(path))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> "TrainLog":
        """Load a log written by `write`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, path: str | os.PathLike[str]) -> None:
        """Draw average return against environment steps into a PNG (matplotlib Agg)."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6.0, 3.6), dpi=100)
        axes = figure.subplots()
        axes.plot(self.steps, self.values, color=CURVE_COLOR, marker=".", label="avg_return")
        axes.set_xlabel("environment steps")
        axes.set_ylabel("average greedy return")
        axes.set_title(self.title)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        atomic_write_bytes(path, buffer.getvalue())


def plot_path(log_path: str | os.PathLike[str]) -> Path:
    """Where the plot of the log at `log_path` goes: same name, `.png` suffix."""
    return Path(log_path).with_suffix(".png")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the new one, never half.

    The bytes go to a fresh temporary file in `path`'s directory (`tempfile.mkstemp`, so that
    concurrent writers never share one), are flushed to disk, and the file is renamed over
    `path` with `os.replace`. If anything fails, the temporary file is removed and `path` is
    left as it was. The file keeps the permissions of the one it replaces; a new one gets those
    of an ordinary new file (0666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
