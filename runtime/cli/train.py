"""`checked-rl train` and `checked-rl eval`: PPO from the command line.

`train` builds a `PPOConfig` from a preset and one option per config field (generated from the
dataclass, its field docstrings as help), trains on the chosen session kind and writes the
training log, its plot and checkpoints. `eval` loads a checkpoint and prints the average greedy
return. Input a user can fix (a negative size, an unknown session kind, `cuda` without a GPU, a
missing checkpoint) ends with one line on stderr and exit code 2; Ctrl-C saves, then exits 130.
"""

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, NoReturn

import torch

from checked_rl.runtime.cli import CLIError
from checked_rl.runtime.sessions import KINDS

__all__ = ["register"]

LOG_OFF = "off"


def register(subparsers: Any) -> None:
    """Add the `train` and `eval` subcommands."""
    from checked_rl.runtime.ppo.config import (
        DEFAULT_ENV_ID,
        PRESETS,
        PPOConfig,
        field_docs,
    )

    kinds = ", ".join(KINDS)
    train = subparsers.add_parser(
        "train",
        help="train PPO (CartPole-v1 by default)",
        description="Train PPO with a preset, optionally overriding any config field.",
    )
    _one_line_errors(train)
    train.add_argument("--preset", default=None, metavar="NAME",
                       help=f"config preset: {', '.join(PRESETS)} (default: default)")
    train.add_argument("--kind", default=None, metavar="KIND",
                       help=f"session kind: {kinds} (default: torch)")
    train.add_argument("--env-id", default=None, metavar="ID",
                       help=f"environment id (default: {DEFAULT_ENV_ID})")
    train.add_argument("--device", default=None, metavar="DEVICE",
                       help="cpu or cuda (default: cpu)")
    train.add_argument("--log", default=LOG_OFF, metavar="PATH|off",
                       help="training log JSON; the PNG plot goes beside it (default: off)")
    train.add_argument("--checkpoint", default=None, metavar="PATH",
                       help="save checkpoints here (default: none)")
    train.add_argument("--resume", default=None, metavar="PATH",
                       help="continue the run saved in this checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    docs = field_docs(PPOConfig)
    defaults = PRESETS["default"]
    for field in dataclasses.fields(PPOConfig):
        option = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        help_text = f"{docs.get(field.name, '')} (default preset: {default})"
        if field.type is bool:
            train.add_argument(option, dest=field.name, default=None,
                               action=argparse.BooleanOptionalAction, help=help_text)
        else:
            train.add_argument(option, dest=field.name, default=None, type=field.type,
                               metavar=field.type.__name__.upper(), help=help_text)
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser(
        "eval",
        help="average greedy return of a checkpoint",
        description="Run the greedy policy of a checkpoint on held-out episodes.",
    )
    _one_line_errors(evaluate)
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT", help="a file saved by train")
    evaluate.add_argument("--episodes", type=int, default=20, metavar="E",
                          help="episodes, run as one session of E environments (default: 20)")
    evaluate.add_argument("--kind", default=None, metavar="KIND",
                          help=f"session kind: {kinds} (default: the checkpoint's)")
    evaluate.add_argument("--device", default="cpu", metavar="DEVICE",
                          help="cpu or cuda (default: cpu)")
    evaluate.add_argument("--seed", type=int, default=None, metavar="S",
                          help="episode j starts from seed S + j (default: the run's "
                               "held-out evaluation seeds)")
    evaluate.add_argument("--max-steps", type=int, default=None, metavar="M",
                          help="cut episodes after M steps (default: the run's eval_max_steps)")
    evaluate.set_defaults(handler=run_eval)


def run_train(args: argparse.Namespace) -> int:
    """Handler of `checked-rl train`."""
    from checked_rl.runtime.ppo.checkpoint import CheckpointError, load_checkpoint
    from checked_rl.runtime.ppo.config import DEFAULT_ENV_ID, PPOConfig, preset
    from checked_rl.runtime.ppo.train import train
    from checked_rl.runtime.ppo.trainlog import plot_path

    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(PPOConfig)
        if getattr(args, field.name) is not None
    }
    run: dict[str, str] = {}
    try:
        if args.resume is not None:
            if args.preset is not None:
                raise CLIError("--preset cannot be combined with --resume (the run keeps its "
                               "own config)")
            saved = load_checkpoint(args.resume)
            config = dataclasses.replace(PPOConfig.from_dict(saved["config"]), **overrides)
            run = saved["run"]
        else:
            config = preset(args.preset or "default", **overrides)
    except (ValueError, TypeError, CheckpointError) as error:
        raise CLIError(str(error)) from None
    kind = _session_kind(args.kind or run.get("kind", "torch"))
    device = _device(args.device or run.get("device", "cpu"))
    env_id = args.env_id or run.get("env_id", DEFAULT_ENV_ID)
    log_path = None if args.log == LOG_OFF else Path(args.log)
    try:
        result = train(
            config,
            kind=kind,
            env_id=env_id,
            device=device,
            log_path=log_path,
            checkpoint_path=args.checkpoint,
            resume=args.resume,
            progress=not args.quiet,
            notes=f"preset={args.preset or 'default'}" if args.resume is None else "",
        )
    except CheckpointError as error:
        raise CLIError(str(error)) from None
    except OSError as error:
        raise CLIError(f"{type(error).__name__}: {error}") from None
    if not args.quiet:
        state = "solved" if result.solved else "not solved"
        last = "none" if result.log.last is None else f"{result.log.last:.1f}"
        print(
            f"{state} after {result.updates} updates ({result.env_steps} environment steps, "
            f"{result.train_seconds:.1f} s training + {result.eval_seconds:.1f} s evaluation): "
            f"average greedy return {last}"
        )
        if log_path is not None:
            print(f"training log: {log_path} (plot: {plot_path(log_path)})")
        if args.checkpoint is not None:
            print(f"checkpoint: {args.checkpoint}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Handler of `checked-rl eval`."""
    from checked_rl.runtime.ppo.checkpoint import CheckpointError, load_checkpoint
    from checked_rl.runtime.ppo.config import PPOConfig
    from checked_rl.runtime.ppo.evaluate import evaluate
    from checked_rl.runtime.ppo.model import ActorCritic
    from checked_rl.runtime.sessions import make_session

    if args.episodes < 1:
        raise CLIError(f"--episodes must be a positive integer, got {args.episodes}")
    if args.max_steps is not None and args.max_steps < 1:
        raise CLIError(f"--max-steps must be a positive integer, got {args.max_steps}")
    try:
        saved = load_checkpoint(args.checkpoint)
        config = PPOConfig.from_dict(saved["config"])
    except (ValueError, CheckpointError) as error:
        raise CLIError(str(error)) from None
    kind = _session_kind(args.kind or saved["run"]["kind"])
    device = _device(args.device)
    network = saved["network"]
    model = ActorCritic(tuple(network["observation_shape"]), network["n_actions"],
                       network["hidden"])
    model.load_state_dict(saved["model"])
    model.to(device)
    seed = config.eval_seed if args.seed is None else args.seed
    max_steps = config.eval_max_steps if args.max_steps is None else args.max_steps
    with make_session(kind, saved["run"]["env_id"], num_envs=args.episodes, device=device) as s:
        returns = evaluate(s, model, seed=seed, max_steps=max_steps)
    print(f"average greedy return over {args.episodes} episodes: {float(returns.mean()):.2f}")
    return 0


def _session_kind(name: str) -> str:
    """`name` if it is a session kind, else a one-line error."""
    if name not in KINDS:
        raise CLIError(f"--kind must be one of {', '.join(KINDS)}, got {name!r}")
    return name


def _device(name: str) -> torch.device:
    """`name` as a torch device that exists here, else a one-line error."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise CLIError(f"--device must be cpu or cuda, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise CLIError(f"--device must be cpu or cuda, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: no CUDA GPU is available on this machine")
    return device


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make argparse report a bad option as one line (no usage block) with exit code 2."""

    def error(message: str) -> NoReturn:
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]
