"""PPO training: collect, compute advantages, optimise, evaluate, checkpoint, repeat.

One update (Schulman et al. 2017, Algorithm 1; `runtime.ppo.update`):

1. collect `T` steps from each of the `N` training environments (`runtime.ppo.collect`);
2. GAE advantages and lambda-return targets (`runtime.ppo.rollout.to_training_batch`);
3. `epochs` passes over the batch in `minibatches` shuffled minibatches, each an Adam step on
   the clipped surrogate + value loss - entropy bonus (`runtime.ppo.loss`), with the gradient
   clipped to `max_grad_norm`;
4. every `eval_every` updates, the greedy policy's returns on held-out episodes; the run
   stops once their mean reaches `solved_return`.

All randomness of the learner comes from one `torch.Generator` seeded with the config's seed,
and the training environments are reset with the same seed, so a run is a function of
(config, session kind, device): on CPU the same inputs give the same log bit for bit.

With a run directory (`runtime.ppo.rundir`) the run writes its config, every metric per update
(`runtime.ppo.metrics`), the log and its plots, `last.pt` and `best.pt` there. All writing goes
through `RunOutputs`, the one place a distributed run would restrict to rank 0.

Checkpoints hold the session's `state_dict()`; the kinds that cannot capture their environments
(the Gymnasium kinds) resume from fresh seeds instead (`_resume_seed`), with a `UserWarning`.
"""

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from checked_rl.runtime.ppo.checkpoint import CheckpointError, load_checkpoint
from checked_rl.runtime.ppo.config import DEFAULT_ENV_ID, PPOConfig
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.normalizing import (
    evaluation_session,
    load_normalization,
    normalizing_session,
)
from checked_rl.runtime.ppo.outputs import RunOutputs, TrainResult
from checked_rl.runtime.ppo.trainlog import TrainLog
from checked_rl.runtime.ppo.update import EpisodeTracker, RunState
from checked_rl.runtime.sessions import KINDS, make_session

__all__ = ["TrainResult", "train"]


def train(
    config: PPOConfig | None = None,
    *,
    kind: str = "torch",
    env_id: str = DEFAULT_ENV_ID,
    device: str | torch.device = "cpu",
    run_dir: str | Path | None = None,
    log_path: str | Path | None = None,
    checkpoint_path: str | Path | None = None,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool = False,
    title: str | None = None,
    notes: str = "",
    on_evaluation: Callable[[int, float], None] | None = None,
    command: list[str] | None = None,
) -> TrainResult:
    """Train PPO and return the result; see the module docstring for one update.

    Args:
        config: the settings; with `resume`, None means the checkpoint's own config.
        kind: the session kind, one of `checked_rl.runtime.sessions.KINDS`.
        env_id: the environment (a Gymnasium id for the Gymnasium sessions).
        device: where the networks and the torch session live.
        run_dir: the run directory (config, metrics, log, plots, `last.pt`, `best.pt`), or
            None for none; checked writable before the run starts.
        log_path: also write the training log JSON (and its PNG plot beside it) here.
        checkpoint_path: also save the `last` checkpoints here: every `checkpoint_every`
            updates, at the end, and when the run fails or is interrupted.
        resume: a checkpoint to continue from, as if the run had never stopped.
        stop_after: stop once this many updates are complete (counting resumed ones), without
            changing the schedule set by `config.updates`; used to split a run.
        progress: a tqdm progress bar on stderr when it is a terminal, otherwise a line per
            evaluation on stderr.
        title: the log's title (default: "PPO on <env_id> (<kind> session)").
        notes: extra text put before the config in the log's notes.
        on_evaluation: called with (env_steps, mean return) after each evaluation, once the
            evaluation is in the log and in the state a checkpoint would save.
        command: the command line, recorded in the run directory's `config.json`.

    On KeyboardInterrupt or any other exception, the log and a checkpoint of the last completed
    update are written before the exception propagates.
    """
    saved = load_checkpoint(resume) if resume is not None else None
    if config is None:
        config = PPOConfig() if saved is None else PPOConfig.from_dict(saved["config"])
    if kind not in KINDS:
        raise ValueError(f"train: kind must be one of {list(KINDS)}, got {kind!r}")
    device = torch.device(device)
    outputs = RunOutputs.open(
        run_dir=run_dir, log_path=log_path, checkpoint_path=checkpoint_path,
        resumed_update=None if saved is None else int(saved["update"]),
    )
    threads = torch.get_num_threads()  # the caller's setting, restored at the end
    torch.set_num_threads(config.threads)
    try:
        session = make_session(kind, env_id, num_envs=config.num_envs, device=device)
    except BaseException:
        torch.set_num_threads(threads)
        raise
    run = None
    try:
        run = _start(config, session, kind, env_id, device, saved, title, notes)
        outputs.start(run, command)
        return outputs.loop(run, stop_after, progress, on_evaluation)
    finally:
        torch.set_num_threads(threads)
        outputs.close()
        try:
            session.close()
        finally:
            if run is not None and run.eval_session is not None:
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
) -> RunState:
    """A run at update 0 (networks initialised from the seed), or the state `saved` holds."""
    session = normalizing_session(session, config)  # itself unless the config normalises
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = ActorCritic.for_session(session, config.hidden)
    model.to(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    run = RunState(
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
        episodes=EpisodeTracker.zeros(config.num_envs, device),
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
            run.best = max(run.log.values, default=None)
            load_normalization(session, saved.get("normalization"))
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
    run.eval_session = evaluation_session(
        make_session(kind, env_id, num_envs=config.eval_episodes, device=device), session
    )
    return run


def _check_resumable(saved: dict[str, Any], config: PPOConfig) -> None:
    """Refuse to resume with a network width, environment count or normalisation the saved
    state does not fit (the session refuses a state of another kind itself)."""
    saved_config = PPOConfig.from_dict(saved["config"])
    for name in ("hidden", "num_envs", "normalize_observations", "normalize_rewards"):
        if getattr(saved_config, name) != getattr(config, name):
            raise CheckpointError(
                f"cannot resume with {name}={getattr(config, name)}: the checkpoint was saved "
                f"with {name}={getattr(saved_config, name)}"
            )


def _resume_seed(config: PPOConfig, update_count: int) -> int:
    """Seed for a session whose state a checkpoint could not hold: fresh training seeds."""
    return config.seed + config.num_envs * update_count


def _notes(prefix: str, config: PPOConfig, kind: str, device: torch.device) -> str:
    """The log's notes: `prefix`, then the session, device and every config field."""
    fields = ", ".join(f"{name}={value}" for name, value in config.to_dict().items())
    parts = [prefix] if prefix else []
    parts.append(f"kind={kind}, device={device}, {fields}")
    return "; ".join(parts)

