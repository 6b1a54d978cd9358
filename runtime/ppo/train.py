"""PPO training: collect, compute advantages, optimise, evaluate, checkpoint, repeat.

One update (Schulman et al. 2017, Algorithm 1):

1. collect `T` steps from each of the `N` training environments (`runtime.ppo.collect`);
2. GAE advantages and lambda-return targets (`runtime.ppo.rollout.to_training_batch`);
3. `epochs` passes over the batch in `minibatches` shuffled minibatches, each an Adam step on
   the clipped surrogate + value loss - entropy bonus (`runtime.ppo.loss`), with the gradient
   clipped to `max_grad_norm`;
4. every `eval_every` updates, the greedy policy's average return on held-out episodes; the run
   stops once it reaches `solved_return`.

All randomness of the learner comes from one `torch.Generator` seeded with the config's seed,
and the training environments are reset with the same seed, so a run is a function of
(config, session kind, device): on CPU the same inputs give the same log bit for bit.

Checkpoints hold the session's `state_dict()`; the kinds that cannot capture their environments
(the Gymnasium kinds) resume from fresh seeds instead (`_resume_seed`), with a `UserWarning`.
"""

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from checked_rl.runtime.ppo.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from checked_rl.runtime.ppo.collect import collect
from checked_rl.runtime.ppo.config import DEFAULT_ENV_ID, PPOConfig
from checked_rl.runtime.ppo.evaluate import evaluate
from checked_rl.runtime.ppo.loss import ppo_loss
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.rollout import TrainingBatch, to_training_batch
from checked_rl.runtime.ppo.trainlog import TrainLog
from checked_rl.runtime.sessions import KINDS, CheckedSession, StateNotCapturedError, make_session

__all__ = ["TrainResult", "optimise", "train"]


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
    """

    model: ActorCritic
    log: TrainLog
    updates: int
    env_steps: int
    solved: bool
    train_seconds: float
    eval_seconds: float


def optimise(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: TrainingBatch,
    config: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """`epochs` passes of minibatch Adam steps on the PPO loss; the last step's statistics.

    With one minibatch the whole batch is used in order; otherwise each pass draws a fresh
    permutation from `generator` (same sequence on every run with the same seed).
    """
    size = len(batch)
    parameters = list(model.parameters())
    stats: dict[str, Tensor] = {}
    for _ in range(config.epochs):
        if config.minibatches == 1:
            minibatches = [batch]
        else:
            order = torch.randperm(size, generator=generator, device=generator.device)
            minibatches = [
                batch.select(indices) for indices in order.split(config.minibatch_size)
            ]
        for minibatch in minibatches:
            loss, stats = minibatch_loss(model, minibatch, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm > 0:
                nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
    return {name: float(value) for name, value in stats.items()}


def minibatch_loss(
    model: ActorCritic, batch: TrainingBatch, config: PPOConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO loss of one minibatch under the current parameters, and its statistics."""
    logits, values = model(batch.observations)
    loss, stats = ppo_loss(
        logits=logits,
        actions=batch.actions,
        old_log_probs=batch.log_probs,
        advantages=batch.advantages,
        values=values,
        returns=batch.returns,
        old_values=batch.values,
        clip_coef=config.clip_coef,
        value_clip_coef=config.clip_coef if config.clip_vloss else None,
        value_coef=config.value_coef,
        entropy_coef=config.entropy_coef,
    )
    return loss, stats._asdict()


@dataclass
class _Run:
    """The mutable state of a run between updates (passed explicitly, no globals)."""

    config: PPOConfig
    meta: dict[str, str]
    session: Any
    eval_session: Any
    model: ActorCritic
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    log: TrainLog
    update: int = 0
    env_steps: int = 0

    def snapshot(self) -> dict[str, Any]:
        """A checkpoint of the state after `update` completed updates (copies, not views)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "run": dict(self.meta),
            "network": self.model.describe(),
            "update": self.update,
            "env_steps": self.env_steps,
            "model": _copy_tree(self.model.state_dict()),
            "optimizer": _copy_tree(self.optimizer.state_dict()),
            "rng": self.generator.get_state().clone(),
            "session": _copy_tree(_session_state(self.session), copy=False),
            "log": self.log.to_dict(),
        }


def train(
    config: PPOConfig | None = None,
    *,
    kind: str = "torch",
    env_id: str = DEFAULT_ENV_ID,
    device: str | torch.device = "cpu",
    log_path: str | Path | None = None,
    checkpoint_path: str | Path | None = None,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool = False,
    title: str | None = None,
    notes: str = "",
    on_evaluation: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train PPO and return the result; see the module docstring for one update.

    Args:
        config: the settings; with `resume`, None means the checkpoint's own config.
        kind: the session kind, one of `checked_rl.runtime.sessions.KINDS`.
        env_id: the environment (a Gymnasium id for the Gymnasium sessions).
        device: where the networks and the torch session live.
        log_path: the training log JSON (and its PNG plot beside it), or None for no files.
        checkpoint_path: checkpoints go here every `checkpoint_every` updates, at the end, and
            when the run fails or is interrupted; None for no checkpoints.
        resume: a checkpoint to continue from, as if the run had never stopped.
        stop_after: stop once this many updates are complete (counting resumed ones), without
            changing the schedule set by `config.updates`; used to split a run.
        progress: show a tqdm progress bar on stderr (when it is a terminal).
        title: the log's title (default: "PPO on <env_id> (<kind> session)").
        notes: extra text put before the config in the log's notes.
        on_evaluation: called with (env_steps, average return) after each evaluation, once the
            evaluation is in the log and in the state a checkpoint would save.

    On KeyboardInterrupt or any other exception, the log and a checkpoint of the last completed
    update are written before the exception propagates.
    """
    saved = load_checkpoint(resume) if resume is not None else None
    if config is None:
        config = PPOConfig() if saved is None else PPOConfig.from_dict(saved["config"])
    if kind not in KINDS:
        raise ValueError(f"train: kind must be one of {list(KINDS)}, got {kind!r}")
    device = torch.device(device)
    torch.set_num_threads(config.threads)
    session = make_session(kind, env_id, num_envs=config.num_envs, device=device)
    run = None
    try:
        run = _start(config, session, kind, env_id, device, saved, title, notes)
        return _loop(run, log_path, checkpoint_path, stop_after, progress, on_evaluation)
    finally:
        session.close()
        if run is not None:
            run.eval_session.close()


def _start(
    config: PPOConfig,
    session: Any,
    kind: str,
    env_id: str,
    device: torch.device,
    saved: dict[str, Any] | None,
    title: str | None,
    notes: str,
) -> _Run:
    """A run at update 0 (networks initialised from the seed), or the state `saved` holds."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = ActorCritic(session.observation_shape, session.n_actions, config.hidden)
    model.to(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    run = _Run(
        config=config,
        meta={"kind": kind, "env_id": env_id, "device": str(device)},
        session=session,
        eval_session=None,
        model=model,
        optimizer=torch.optim.Adam(
            model.parameters(), lr=config.learning_rate, eps=config.adam_eps
        ),
        generator=generator,
        log=TrainLog(
            title or f"PPO on {env_id} ({kind} session)",
            notes=_notes(notes, config, kind, device),
        ),
    )
    if saved is None:
        session.reset(seed=config.seed)
    else:
        _check_resumable(saved, config)
        try:
            model.load_state_dict(saved["model"])
            run.optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["rng"].to(generator.get_state().device))
            run.update, run.env_steps = int(saved["update"]), int(saved["env_steps"])
            run.log = TrainLog.from_dict(saved["log"])
            if saved["session"] is None:
                seed = _resume_seed(config, run.update)
                warnings.warn(
                    f"resuming a {saved['run']['kind']!r} run whose checkpoint holds no session "
                    f"state (the kind cannot capture its environments): the training "
                    f"environments restart from fresh seeds ({seed} + i), not where they stopped",
                    UserWarning,
                    stacklevel=3,
                )
                session.reset(seed=seed)
            else:
                session.load_state_dict(saved["session"])
        except (ValueError, RuntimeError, KeyError) as error:
            detail = " ".join(str(error).split())
            raise CheckpointError(f"the checkpoint cannot resume this run: {detail}") from error
    run.eval_session = make_session(kind, env_id, num_envs=config.eval_episodes, device=device)
    return run


def _check_resumable(saved: dict[str, Any], config: PPOConfig) -> None:
    """Refuse to resume with a network width or environment count the saved state does not fit
    (the session refuses a state of another kind itself)."""
    saved_config = PPOConfig.from_dict(saved["config"])
    for name in ("hidden", "num_envs"):
        if getattr(saved_config, name) != getattr(config, name):
            raise CheckpointError(
                f"cannot resume with {name}={getattr(config, name)}: the checkpoint was saved "
                f"with {name}={getattr(saved_config, name)}"
            )


def _loop(
    run: _Run,
    log_path: str | Path | None,
    checkpoint_path: str | Path | None,
    stop_after: int | None,
    progress: bool,
    on_evaluation: Callable[[int, float], None] | None,
) -> TrainResult:
    """Update, evaluate and checkpoint until solved, `updates` or `stop_after`."""
    config = run.config
    last = config.updates if stop_after is None else min(stop_after, config.updates)
    # The state after the last completed update: what is saved if the run stops. The full
    # snapshot (model and optimizer copies) is only taken when there is a checkpoint to save.
    boundary = run.snapshot() if checkpoint_path is not None else None
    boundary_log = run.log.to_dict()
    bar = _progress_bar(progress, config.updates, run.update)
    train_seconds = eval_seconds = 0.0
    solved = run.log.last is not None and run.log.last >= config.solved_return
    try:
        while run.update < last and not solved:
            tick = time.perf_counter()
            _update(run)
            elapsed = time.perf_counter() - tick
            train_seconds += elapsed
            evaluated = run.update % config.eval_every == 0 or run.update == config.updates
            if evaluated:
                tick = time.perf_counter()
                returns = evaluate(run.eval_session, run.model, seed=config.eval_seed,
                                   max_episode_steps=config.eval_max_episode_steps)
                eval_seconds += time.perf_counter() - tick
                run.log.append(run.env_steps, float(returns.mean()))
                solved = run.log.values[-1] >= config.solved_return
                if log_path is not None:
                    run.log.write(log_path, plot=False)
            boundary_log = run.log.to_dict()
            if checkpoint_path is not None:
                boundary = run.snapshot()
                if run.update % config.checkpoint_every == 0:
                    save_checkpoint(checkpoint_path, boundary)
            if evaluated and on_evaluation is not None:
                on_evaluation(run.env_steps, run.log.values[-1])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    avg_return="-" if run.log.last is None else f"{run.log.last:.1f}",
                    steps_per_s=f"{config.batch_size / max(elapsed, 1e-9):.0f}",
                    refresh=False,
                )
    finally:
        if bar is not None:
            bar.close()
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, boundary)
        if log_path is not None:
            TrainLog.from_dict(boundary_log).write(log_path)
    return TrainResult(run.model, run.log, run.update, run.env_steps, solved, train_seconds,
                       eval_seconds)


def _update(run: _Run) -> None:
    """One PPO update: anneal the step size, collect, compute advantages, optimise."""
    config = run.config
    if config.anneal_lr:
        for group in run.optimizer.param_groups:
            group["lr"] = config.learning_rate * (1.0 - run.update / config.updates)
    rollout = collect(run.session, run.model, config.horizon, generator=run.generator)
    batch = to_training_batch(
        rollout, gamma=config.gamma, lam=config.lam, normalize=config.normalize_advantages
    )
    optimise(run.model, run.optimizer, batch, config, run.generator)
    run.update += 1
    run.env_steps += config.batch_size


def _copy_tree(value: Any, *, copy: bool = True) -> Any:
    """Nested dicts/lists with their tensors copied to the CPU (`copy=False`: only moved)."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=copy)
    if isinstance(value, dict):
        return {key: _copy_tree(item, copy=copy) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copy_tree(item, copy=copy) for item in value)
    return value


def _session_state(session: CheckedSession) -> dict[str, Any] | None:
    """`session.state_dict()`, or None for a kind that cannot capture its environments."""
    try:
        return session.state_dict()
    except StateNotCapturedError:
        return None


def _resume_seed(config: PPOConfig, update: int) -> int:
    """Seed for a session whose state a checkpoint could not hold: fresh training seeds."""
    return config.seed + config.num_envs * update


def _notes(prefix: str, config: PPOConfig, kind: str, device: torch.device) -> str:
    """The log's notes: `prefix`, then the session, device and every config field."""
    fields = ", ".join(f"{name}={value}" for name, value in config.to_dict().items())
    parts = [prefix] if prefix else []
    parts.append(f"kind={kind}, device={device}, {fields}")
    return "; ".join(parts)


def _progress_bar(enabled: bool, total: int, initial: int) -> Any:
    """A tqdm bar on stderr, or None when disabled or stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, file=sys.stderr, unit="update", leave=False)

