"""`checked-rl eval`: the greedy returns of a checkpoint, and a recording of an episode.

    checked-rl eval runs/CartPole-v1/<run>/best.pt [--episodes 20] [--json]
    checked-rl eval best.pt --render rgb_array --record episode.gif

prints the mean, standard deviation, minimum and maximum of the returns and the episode
lengths (`--json`: one machine-readable line). The checkpoint is validated before use, and an
environment id naming a module is only imported with `--env-id` or `--trust-checkpoint-env`.
"""

import argparse
import json
from pathlib import Path
from typing import Any

from checked_rl.runtime.cli import CLIError, one_line
from checked_rl.runtime.cli.loading import (
    check_memory,
    device_option,
    load_policy,
    open_session,
    session_kind,
)
from checked_rl.runtime.contract import ContractViolation
from checked_rl.runtime.sessions import KINDS, EnvironmentStepError

__all__ = ["register", "run_eval"]


def register(subparsers: Any) -> None:
    """Add the `eval` subcommand."""
    evaluate = subparsers.add_parser(
        "eval",
        help="greedy returns of a checkpoint (mean, std, min, max, lengths)",
        description="Run the greedy policy of a checkpoint on held-out episodes.",
    )
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT", help="a file saved by train")
    evaluate.add_argument("--episodes", type=int, default=20, metavar="E",
                          help="episodes, run as one session of E environments (default: 20)")
    evaluate.add_argument("--kind", default=None, metavar="KIND",
                          help=f"session kind: {', '.join(KINDS)} (default: the checkpoint's)")
    evaluate.add_argument("--device", default="cpu", metavar="DEVICE",
                          help="cpu or cuda (default: cpu)")
    evaluate.add_argument("--seed", type=int, default=None, metavar="S",
                          help="episode j starts from seed S + j (default: the run's "
                               "held-out evaluation seeds)")
    evaluate.add_argument("--max-episode-steps", type=int, default=None, metavar="M",
                          help="cut episodes after M steps (default: the run's "
                               "eval_max_episode_steps)")
    evaluate.add_argument("--env-id", default=None, metavar="ID",
                          help="evaluate on this environment (default: the checkpoint's)")
    evaluate.add_argument("--trust-checkpoint-env", action="store_true",
                          help="import the module the checkpoint's environment id names")
    evaluate.add_argument("--json", action="store_true", help="print one JSON line")
    evaluate.add_argument("--render", default=None, choices=["rgb_array"],
                          help="render mode of the recorded episode (rgb_array)")
    evaluate.add_argument("--record", default=None, metavar="OUT.gif",
                          help="record the greedy episode from the first seed as a GIF "
                               "(needs pygame for classic control)")
    evaluate.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    """Handler of `checked-rl eval`."""
    from checked_rl.runtime.ppo.config import SEED_BOUND
    from checked_rl.runtime.ppo.evaluate import evaluate_episodes
    from checked_rl.runtime.ppo.normalizing import normalized_policy

    if args.episodes < 1:
        raise CLIError(f"--episodes must be a positive integer, got {args.episodes}")
    if args.max_episode_steps is not None and args.max_episode_steps < 1:
        raise CLIError(
            f"--max-episode-steps must be a positive integer, got {args.max_episode_steps}"
        )
    if args.seed is not None and not 0 <= args.seed <= SEED_BOUND - args.episodes:
        raise CLIError(f"--seed must lie in [0, 2^64 - E] so that every episode's seed "
                       f"S + j is below 2^64, got {args.seed}")
    if args.render is not None and args.record is None:
        raise CLIError("--render rgb_array records an episode: give --record OUT.gif")
    policy = load_policy(args.checkpoint, args.env_id, args.trust_checkpoint_env)
    kind = session_kind(args.kind or policy.run["kind"])
    device = device_option(args.device)
    seed = policy.config.eval_seed if args.seed is None else args.seed
    max_steps = (policy.config.eval_max_episode_steps if args.max_episode_steps is None
                 else args.max_episode_steps)
    with open_session("evaluate on", kind, policy.env_id, num_envs=1, device=device) as probe:
        check_memory(kind, probe, eval_episodes=args.episodes, episodes_option="--episodes")
        spaces = (tuple(probe.observation_shape), _actions(probe.n_actions, probe.action_box))
    network = (policy.model.observation_shape,
               _actions(policy.model.n_actions, policy.model.action_shape))
    if spaces != network:
        raise CLIError(
            f"checkpoint {args.checkpoint}: its network takes observations of shape "
            f"{network[0]} and {network[1]}, {policy.env_id} has {spaces[0]} and {spaces[1]}"
        )
    model = normalized_policy(policy.model, policy.saved).to(device)  # the saved statistics
    try:
        with open_session("evaluate on", kind, policy.env_id, num_envs=args.episodes,
                          device=device) as session:
            returns, lengths = evaluate_episodes(session, model, seed=seed,
                                                 max_episode_steps=max_steps)
    except (ContractViolation, EnvironmentStepError) as error:
        raise CLIError(f"{policy.env_id}: {one_line(error)}") from None
    values = [float(v) for v in returns.tolist()]
    steps = [int(n) for n in lengths.tolist()]
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    recorded = None
    if args.record is not None:
        recorded = _record(policy, Path(args.record), seed, max_steps)
    if args.json:
        print(json.dumps({
            "checkpoint": args.checkpoint, "env_id": policy.env_id, "kind": kind,
            "episodes": len(values), "seed": seed, "mean": mean, "std": std,
            "min": min(values), "max": max(values), "returns": values, "lengths": steps,
            "recorded": recorded,
        }))
        return 0
    print(f"average greedy return over {len(values)} episodes: {mean:.2f} "
          f"(std {std:.2f}, min {min(values):.2f}, max {max(values):.2f})")
    print(f"episode lengths: mean {sum(steps) / len(steps):.1f}, min {min(steps)}, "
          f"max {max(steps)}")
    if recorded is not None:
        print(f"recorded: {recorded['path']} (return {recorded['return']:.1f}, "
              f"{recorded['length']} steps)")
    return 0


def _actions(n_actions: int | None, box: Any) -> str:
    """`n actions`, or `Box actions of shape S` (from a box or an action shape)."""
    if n_actions is not None:
        return f"{n_actions} actions"
    return f"Box actions of shape {tuple(getattr(box, 'shape', box))}"


def _record(policy: Any, path: Path, seed: int, max_steps: int) -> dict[str, Any]:
    """Record the episode from `seed` (`runtime.ppo.record`), or a one-line error."""
    from checked_rl.runtime.ppo.normalizing import normalized_policy
    from checked_rl.runtime.ppo.record import RecordError, record_episode
    from checked_rl.runtime.ppo.rundir import check_file_path, check_writable

    try:
        check_file_path("--record", str(path))
        check_writable(path.parent, "the directory of --record")
        model = normalized_policy(policy.model, policy.saved).cpu()
        total, length = record_episode(model, policy.env_id, path, seed=seed,
                                       max_episode_steps=max_steps)
    except (RecordError, ValueError, OSError) as error:
        raise CLIError(str(error)) from None
    return {"path": str(path), "return": total, "length": length}
