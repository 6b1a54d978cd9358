"""Every metric of a run, per update: a CSV file, TensorBoard events when installed, a line
per evaluation on stderr, and a PNG of the main curves.

`metrics.csv` has one row per update with the columns `CSV_COLUMNS`: the update number, the
environment steps trained on, the wall time since the run (or its resume) started, the
update's metrics (`runtime.ppo.update.UPDATE_METRICS`) and, on the updates that evaluated,
the mean, standard deviation, minimum and maximum of the greedy returns and the mean length of
the evaluation episodes (empty otherwise). A missing value is empty (`nan` would be parsed as
a number by most readers, which is also fine).

TensorBoard is optional (`pip install 'checked-rl[tensorboard]'`): without it the run says so
once and writes the CSV only.
"""

import csv
import io
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from checked_rl.runtime.ppo.trainlog import atomic_write_bytes
from checked_rl.runtime.ppo.update import UPDATE_METRICS

__all__ = ["CSV_COLUMNS", "EVAL_METRICS", "MetricsLog", "evaluation_line", "tensorboard_writer"]

EVAL_METRICS = ("eval_mean", "eval_std", "eval_min", "eval_max", "eval_length_mean")
"""The columns an evaluation fills."""

CSV_COLUMNS = ("update", "env_steps", "wall_s", *UPDATE_METRICS, *EVAL_METRICS)
"""The columns of `metrics.csv`, in order."""

PLOTTED = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
           "explained_variance", "episode_return_mean", "eval_mean")
"""The metrics drawn in `metrics.png`, one panel each, against environment steps."""


def tensorboard_writer(directory: Path) -> Any:
    """A `torch.utils.tensorboard.SummaryWriter` into `directory`, or None when the
    `tensorboard` package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(directory))


class MetricsLog:
    """The rows of `metrics.csv`, kept in memory and appended to the file as they come.

    On resume, the rows of updates after the checkpoint (written before a crash, then lost
    with the state that produced them) are dropped, so the file holds one row per update.
    """

    def __init__(self, path: Path, *, keep_until: int | None = None,
                 tensorboard: Any = None) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = []
        self.tensorboard = tensorboard
        if keep_until is not None and path.is_file():
            with path.open(newline="") as handle:
                self.rows = [_parse(row) for row in csv.DictReader(handle)
                             if row.get("update") and int(row["update"]) <= keep_until]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_format(row) for row in self.rows)
        atomic_write_bytes(path, buffer.getvalue().encode())

    def append(self, row: Mapping[str, float]) -> None:
        """Add one update's row to the file (and its scalars to TensorBoard)."""
        full = {name: float(row.get(name, math.nan)) for name in CSV_COLUMNS}
        self.rows.append(full)
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n").writerow(
                _format(full)
            )
        if self.tensorboard is not None:
            step = int(full["env_steps"])
            for name in CSV_COLUMNS[3:]:
                if math.isfinite(full[name]):
                    group = "eval" if name in EVAL_METRICS else "train"
                    self.tensorboard.add_scalar(f"{group}/{name}", full[name], step)

    def close(self) -> None:
        """Flush and close TensorBoard's writer."""
        if self.tensorboard is not None:
            self.tensorboard.close()

    def plot(self, path: Path, title: str) -> None:
        """Draw the `PLOTTED` metrics against environment steps into a PNG (matplotlib Agg)."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(10.0, 6.0), dpi=100)
        panels = figure.subplots(2, 4).ravel()
        for axes, name in zip(panels, PLOTTED, strict=True):
            points = [(row["env_steps"], row[name]) for row in self.rows
                      if math.isfinite(row[name])]
            axes.plot([p[0] for p in points], [p[1] for p in points], marker=".", markersize=3)
            axes.set_title(name, fontsize=9)
            axes.tick_params(labelsize=7)
            axes.grid(alpha=0.3)
        figure.suptitle(f"{title}: metrics against environment steps", fontsize=10)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        atomic_write_bytes(path, buffer.getvalue())


def evaluation_line(update: int, updates: int, env_steps: int, row: Mapping[str, float],
                    file: TextIO = sys.stderr) -> None:
    """Print one line for an evaluation: where the run is and the greedy returns' spread."""
    print(
        f"update {update}/{updates}, {env_steps} steps: greedy return "
        f"{row['eval_mean']:.1f} (std {row['eval_std']:.1f}, min {row['eval_min']:.1f}, "
        f"max {row['eval_max']:.1f}), training episodes "
        f"{_maybe(row['episode_return_mean'])}, {row['steps_per_s']:.0f} steps/s",
        file=file,
        flush=True,
    )


def _maybe(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.1f}"


def _format(row: Mapping[str, float]) -> dict[str, str]:
    """A row as CSV text: integers without a decimal point, NaN as empty, floats with repr."""
    out = {}
    for name in CSV_COLUMNS:
        value = row[name]
        if not math.isfinite(value):
            out[name] = ""
        elif name in ("update", "env_steps", "episodes"):
            out[name] = str(int(value))
        else:
            out[name] = repr(float(value))
    return out


def _parse(row: Mapping[str, str]) -> dict[str, float]:
    return {name: float(row[name]) if row.get(name) else math.nan for name in CSV_COLUMNS}
