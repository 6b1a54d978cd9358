"""What a training run writes, and the loop that writes it.

`RunOutputs` owns every file of a run: the run directory (`runtime.ppo.rundir`) and the extra
copies a caller asked for (`log_path`, `checkpoint_path`). It checks all their places writable
before the run starts, and writes the config at the start, a metrics row per update, the log
after each evaluation, `last.pt` every `checkpoint_every` updates, `best.pt` on each new best
evaluation, and at the end (also when interrupted) the last checkpoint, the log, the plots and
`summary.json`. A distributed run (`parallel`, `runtime.ppo.distributed`) opens it on rank 0
and a silent one (no places) on every other rank: only rank 0 evaluates and writes, its stop
decision is shared, and its checkpoints gather the other ranks' generator and session states.
"""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from checked_rl.runtime.ppo.checkpoint import save_checkpoint
from checked_rl.runtime.ppo.evaluate import evaluate_episodes
from checked_rl.runtime.ppo.metrics import MetricsLog, evaluation_line, tensorboard_writer
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.rundir import RunDir, check_writable
from checked_rl.runtime.ppo.trainlog import TrainLog
from checked_rl.runtime.ppo.update import RunState, update

__all__ = ["RunOutputs", "TrainResult"]


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced.

    Attributes:
        model: the trained actor-critic.
        log: the evaluation curve.
        updates: updates completed, counting those before a resume.
        env_steps: environment steps trained on.
        solved: whether the last evaluation reached `solved_return`.
        train_seconds: wall time spent collecting and optimising in this call.
        eval_seconds: wall time spent evaluating in this call.
        run_dir: the run directory, or None when the run wrote none.
        best: the best mean greedy return evaluated (None before the first evaluation).
    """

    model: ActorCritic
    log: TrainLog
    updates: int
    env_steps: int
    solved: bool
    train_seconds: float
    eval_seconds: float
    run_dir: Path | None = None
    best: float | None = None


class RunOutputs:
    """The files of one run; see the module docstring."""

    def __init__(self, run_dir: RunDir | None, log_path: Path | None,
                 checkpoint_path: Path | None, metrics: MetricsLog | None) -> None:
        self.run_dir = run_dir
        self.log_path = log_path
        self.checkpoint_path = checkpoint_path
        self.metrics = metrics
        self.summary: dict[str, Any] = {}
        self.parallel: Any = None

    @classmethod
    def open(cls, *, run_dir: str | Path | None, log_path: str | Path | None,
             checkpoint_path: str | Path | None, resumed_update: int | None) -> "RunOutputs":
        """Check every place writable (OSError otherwise) and open the metrics file."""
        log = None if log_path is None else Path(log_path)
        checkpoint = None if checkpoint_path is None else Path(checkpoint_path)
        for path, what in ((log, "the directory of the log"),
                           (checkpoint, "the directory of the checkpoint")):
            if path is not None:
                check_writable(path.parent, what)
        if run_dir is None:
            return cls(None, log, checkpoint, None)
        directory = RunDir(Path(run_dir))
        if resumed_update is None and directory.config.exists():
            raise FileExistsError(
                f"run directory {directory.root} already holds a run (config.json): choose "
                f"another directory or resume it"
            )
        check_writable(directory.root, "the run directory")
        metrics = MetricsLog(directory.metrics, keep_until=resumed_update,
                             tensorboard=tensorboard_writer(directory.tensorboard))
        return cls(directory, log, checkpoint, metrics)

    @property
    def saves_checkpoints(self) -> bool:
        return self.run_dir is not None or self.checkpoint_path is not None

    def snapshot(self, run: RunState) -> dict[str, Any]:
        """`run.snapshot()`, with every other rank's generator and session in a distributed
        run (every rank takes part; the others get their own snapshot back)."""
        checkpoint = run.snapshot()
        if self.parallel is not None:
            ranks = self.parallel.gather_rank_states(
                lambda: {"rng": checkpoint["rng"], "session": checkpoint["session"]})
            if ranks is not None:
                checkpoint["distributed"] = ranks
        return checkpoint

    def start(self, run: RunState, command: list[str] | None) -> None:
        """Write `config.json`."""
        if self.run_dir is not None:
            self.run_dir.write_json(self.run_dir.config, {
                "config": run.config.to_dict(), "run": dict(run.meta),
                "command": command, "started_at_update": run.update,
            })

    def save_last(self, checkpoint: dict[str, Any]) -> None:
        for path in (None if self.run_dir is None else self.run_dir.last, self.checkpoint_path):
            if path is not None:
                save_checkpoint(path, checkpoint)

    def save_best(self, checkpoint: dict[str, Any]) -> None:
        if self.run_dir is not None:
            save_checkpoint(self.run_dir.best, checkpoint)

    def write_log(self, log: TrainLog, *, plot: bool) -> None:
        for path in (None if self.run_dir is None else self.run_dir.trainlog, self.log_path):
            if path is not None:
                log.write(path, plot=plot)

    def finish(self, boundary: dict[str, Any] | None, log: TrainLog, title: str) -> None:
        """The end of the run, however it ends: last checkpoint, log, plots, summary."""
        if boundary is not None:
            self.save_last(boundary)
        self.write_log(log, plot=True)
        if self.run_dir is not None:
            self.run_dir.write_json(self.run_dir.summary, self.summary)
            if self.metrics is not None and self.metrics.rows:
                self.metrics.plot(self.run_dir.metrics_plot, title)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()

    def loop(self, run: RunState, stop_after: int | None, progress: bool,
             on_evaluation: Callable[[int, float], None] | None) -> TrainResult:
        """Update, evaluate and checkpoint until solved, `updates` or `stop_after`."""
        config = run.config
        last = config.updates if stop_after is None else min(stop_after, config.updates)
        # The state after the last completed update: what is saved if the run stops. The full
        # snapshot (model and optimizer copies) is only taken when there is a checkpoint.
        parallel = self.parallel
        writes = parallel is None or parallel.writes
        # Every rank takes part in the snapshots when rank 0 saves checkpoints.
        snapshots = self.saves_checkpoints
        if parallel is not None:
            snapshots = parallel.agree(snapshots)
        boundary = self.snapshot(run) if snapshots else None
        boundary_log = run.log.to_dict()
        bar = _progress_bar(progress, config.updates, run.update)
        lines = progress and bar is None
        started = time.perf_counter()
        seconds = {"train": 0.0, "eval": 0.0}
        solved = run.log.last is not None and run.log.last >= config.solved_return
        self.summary = _summary(run, solved, seconds, None, interrupted=True)
        solved_at: tuple[int, float] | None = None
        try:
            while run.update < last and not solved:
                tick = time.perf_counter()
                row: dict[str, float] = dict(update(run))
                seconds["train"] += time.perf_counter() - tick
                evaluated = run.update % config.eval_every == 0 or run.update == config.updates
                if evaluated and writes:
                    tick = time.perf_counter()
                    returns, lengths = evaluate_episodes(
                        run.eval_session, run.model, seed=config.eval_seed,
                        max_episode_steps=config.eval_max_episode_steps)
                    seconds["eval"] += time.perf_counter() - tick
                    row.update(_eval_stats(returns, lengths))
                    run.log.append(run.env_steps, row["eval_mean"])
                    solved = run.log.values[-1] >= config.solved_return
                    if solved:
                        solved_at = (run.env_steps, sum(seconds.values()))
                    self.write_log(run.log, plot=False)
                if evaluated and parallel is not None:
                    solved = parallel.agree(solved)
                evaluated = evaluated and writes
                boundary_log = run.log.to_dict()
                best = evaluated and (run.best is None or run.log.values[-1] > run.best)
                if best:
                    run.best = run.log.values[-1]
                if snapshots:
                    boundary = self.snapshot(run)
                    if run.update % config.checkpoint_every == 0:
                        self.save_last(boundary)
                    if best:
                        self.save_best(boundary)
                row.update(update=run.update, env_steps=run.env_steps,
                           wall_s=time.perf_counter() - started)
                if self.metrics is not None:
                    self.metrics.append(row)
                self.summary = _summary(run, solved, seconds, solved_at, interrupted=True)
                if evaluated and lines:
                    evaluation_line(run.update, config.updates, run.env_steps, row)
                if evaluated and on_evaluation is not None:
                    on_evaluation(run.env_steps, run.log.values[-1])
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        avg_return="-" if run.log.last is None else f"{run.log.last:.1f}",
                        steps_per_s=f"{row['steps_per_s']:.0f}", refresh=False)
            self.summary = _summary(run, solved, seconds, solved_at, interrupted=False)
        finally:
            if bar is not None:
                bar.refresh()
                bar.close()
            self.finish(boundary, TrainLog.from_dict(boundary_log), run.log.title)
        return TrainResult(run.model, run.log, run.update, run.env_steps, solved,
                           seconds["train"], seconds["eval"],
                           None if self.run_dir is None else self.run_dir.root, run.best)


def _eval_stats(returns: torch.Tensor, lengths: torch.Tensor) -> dict[str, float]:
    """Mean, population standard deviation, min and max of the returns; mean length."""
    return {
        "eval_mean": float(returns.mean()),
        "eval_std": float(returns.std(unbiased=False)),
        "eval_min": float(returns.min()),
        "eval_max": float(returns.max()),
        "eval_length_mean": float(lengths.to(torch.float64).mean()),
    }


def _summary(run: RunState, solved: bool, seconds: dict[str, float],
             solved_at: tuple[int, float] | None, *, interrupted: bool) -> dict[str, Any]:
    """What `summary.json` holds (and what `--seeds` tabulates)."""
    final = run.log.last
    return {
        "env_id": run.meta["env_id"],
        "seed": run.config.seed,
        "solved": solved,
        "updates": run.update,
        "env_steps": run.env_steps,
        "steps_to_solve": None if solved_at is None else solved_at[0],
        "seconds_to_solve": None if solved_at is None else solved_at[1],
        "final_return": final,
        "best_return": run.best,
        "train_seconds": seconds["train"],
        "eval_seconds": seconds["eval"],
        "interrupted": interrupted,
        "curve": {"steps": list(run.log.steps), "returns": list(run.log.values)},
    }


def _progress_bar(enabled: bool, total: int, initial: int) -> Any:
    """A tqdm bar on stderr that stays on screen, or None when disabled or not a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, file=sys.stderr, unit="update", leave=True)

