"""`checked-rl check-env`: run a random policy through a Gymnasium environment's contract.

    checked-rl check-env CartPole-v1 --steps 1000 --num-envs 4 [--kind gymnasium-subprocess]
    checked-rl check-env my_module:MyEnv --vector --autoreset-mode same-step

Builds a checked session of `--kind` over `ENV_ID` (`gymnasium`: in this process, the default;
`gymnasium-subprocess`: in bridge servers; `gymnasium-vector`, or `--vector`: a Gymnasium vector
environment made by `gymnasium.make_vec`, in any autoreset mode), steps it with uniformly random
actions and checks, besides the contract that every session applies, the session invariants: each
transition's `observation` is the previous `observe()`, and where no episode ended the next
`observe()` is the transition's `next_observation` (same-step auto-reset). It prints a short report
and exits with 0 when nothing was found, otherwise with a one-line error (exit code 2). After a
violation the session is reset and the check goes on, up to `MAX_VIOLATIONS` violations. A violation
at reset is listed like one at a step; so is an environment that raises anything, `SystemExit`
included (it never ends the check as a success), and a `close()` that raises: the report is printed
all the same. Only Ctrl-C (`KeyboardInterrupt`) interrupts the check.

`ENV_ID` is any Gymnasium id, the `module:Name-vN` form, or `module:Class` for a
`gymnasium.Env` subclass (see `runtime.env_names`; not with `gymnasium-subprocess`, whose
servers make environments from ids); the module is imported from the current directory or the
Python path.
"""

import argparse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from checked_rl.runtime.bridge import BridgeError
from checked_rl.runtime.cli import SESSION_ERRORS, CLIError, one_line
from checked_rl.runtime.cli.env_ids import EnvIdError, resolve_env_id
from checked_rl.runtime.contract import ContractViolation, Transition, torch_dtype
from checked_rl.runtime.env_names import registered_from_class
from checked_rl.runtime.sessions import (
    GYMNASIUM_KINDS,
    CheckedSession,
    EnvironmentCloseError,
    EnvironmentStepError,
    make_session,
)
from checked_rl.runtime.sessions.subprocess_envs import DEFAULT_TIMEOUT
from checked_rl.runtime.sessions.vector_envs import AUTORESET_MODES, VECTORIZATION_MODES

__all__ = ["MAX_VIOLATIONS", "CheckReport", "check_session", "register"]

MAX_VIOLATIONS = 10
"""The check stops after this many violations."""


@dataclass
class CheckReport:
    """What `check_session` found.

    Attributes:
        steps: batched steps taken (each steps every environment once).
        transitions: transitions checked (steps times environments, less rejected ones).
        episodes: episodes that ended (terminated or truncated).
        violations: the messages of contract violations, environment errors and broken
            session invariants, in the order found.
    """

    steps: int = 0
    transitions: int = 0
    episodes: int = 0
    violations: list[str] = field(default_factory=list)


def check_session(session: CheckedSession, steps: int, seed: int) -> CheckReport:
    """Step `session` `steps` times with uniform random actions; check contract and invariants.

    The session is reset with `seed`, the actions are drawn from a torch generator seeded with
    `seed`; after a violation the session is reset (without a seed) and the check goes on.
    Whatever the environment raises at reset or at a step (`BaseException` but Ctrl-C's
    `KeyboardInterrupt`, so `SystemExit` too) is a violation, never the end of the check; a
    `BridgeError` (a server that crashed or hung) ends it and is raised.
    """
    report = CheckReport()
    generator = torch.Generator().manual_seed(seed)
    observation = _reset(session, seed, report)
    for step in range(steps):
        if observation is None:
            break
        actions = random_actions(session, generator)
        report.steps += 1
        try:
            transition = session.step_checked(actions)
        except (KeyboardInterrupt, BridgeError):  # Ctrl-C; a dead server: reported by run()
            raise
        except ContractViolation as error:
            report.violations.append(str(error))
            observation = _reset(session, None, report)
            continue
        except BaseException as error:  # SystemExit & co. from an environment
            report.violations.append(f"step {step}: {_raised(error)}")
            observation = _reset(session, None, report)
            continue
        current = session.observe()
        report.transitions += session.num_envs
        report.episodes += int(transition.done.sum())
        report.violations += _invariant_violations(observation, transition, current, step)
        observation = current
    return report


def _reset(session: CheckedSession, seed: int | None, report: CheckReport) -> torch.Tensor | None:
    """`session.reset(seed)`, retried without a seed after a violation; None once
    `MAX_VIOLATIONS` are reached. Its violations go to `report` like those of a step."""
    while len(report.violations) < MAX_VIOLATIONS:
        try:
            return session.reset(seed=seed)
        except (KeyboardInterrupt, BridgeError):
            raise
        except ContractViolation as error:
            report.violations.append(f"reset: {error}")
        except BaseException as error:  # SystemExit & co. from an environment
            report.violations.append(f"reset: {_raised(error)}")
        seed = None
    return None


def _raised(error: BaseException) -> str:
    """What an environment raised, for a report line."""
    if isinstance(error, (EnvironmentStepError, EnvironmentCloseError)):
        text = str(error)  # the session names the environment, where and what it raised
        if isinstance(error.__cause__, SystemExit):
            text += "; an environment must not exit the process"
        return text
    text = one_line(error)
    if isinstance(error, SystemExit):
        text = f"SystemExit({error.code!r}); an environment must not exit the process"
    return f"the environment raised {text}"


def close_session(session: CheckedSession) -> str | None:
    """Close `session`; the report line of what `close()` raised, or None."""
    try:
        session.close()
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # reported, not fatal
        return f"close: {_raised(error)}"
    return None


def random_actions(session: CheckedSession, generator: torch.Generator) -> torch.Tensor:
    """One uniformly random action per environment: an integer in `[0, n_actions)`, or for a
    `Box` a uniform draw from `[low, high]` (a standard normal, clipped into the box, for an
    entry with an infinite bound), in the box's dtype."""
    box = session.action_box
    if box is None:
        return torch.randint(session.n_actions, (session.num_envs,), generator=generator)
    low, high = (torch.tensor(bound) for bound in (box.low, box.high))
    shape = (session.num_envs, *box.shape)
    uniform = low + torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low)
    normal = torch.randn(shape, generator=generator, dtype=torch.float64).clamp(low, high)
    bounded = torch.isfinite(low) & torch.isfinite(high)
    return torch.where(bounded, uniform, normal).to(torch_dtype(box.dtype))


def _invariant_violations(
    previous: torch.Tensor, transition: Transition, current: torch.Tensor, step: int
) -> list[str]:
    """Messages for broken session invariants at `step` (empty when both hold)."""
    found = []
    done = transition.done
    for env in range(previous.shape[0]):
        if not torch.equal(transition.observation[env], previous[env]):
            found.append(
                f"session invariant: observation[env {env}, step {step}] is not the previous "
                f"observe(): {transition.observation[env].tolist()} != {previous[env].tolist()}"
            )
        if not done[env] and not torch.equal(current[env], transition.next_observation[env]):
            found.append(
                f"session invariant: observe()[env {env}] after step {step} is not "
                f"next_observation although the episode goes on: {current[env].tolist()} != "
                f"{transition.next_observation[env].tolist()}"
            )
    return found


def run(args: argparse.Namespace) -> int:
    """The handler of `check-env`: build the session, check it, print the report."""
    if not (args.steps >= 1 and args.num_envs >= 1 and args.timeout > 0):
        raise CLIError(
            f"expected --steps >= 1, --num-envs >= 1 and --timeout > 0, got {args.steps}, "
            f"{args.num_envs} and {args.timeout}"
        )
    try:
        resolve_env_id(args.env_id)
    except EnvIdError as error:
        raise CLIError(f"cannot check {args.env_id!r}: {error}") from None
    kind = "gymnasium-vector" if args.vector else args.kind
    options: dict[str, Any] = {}
    if kind == "gymnasium-subprocess":
        options = {"num_servers": min(args.num_servers, args.num_envs), "timeout": args.timeout}
    elif kind == "gymnasium-vector":
        options = {"vectorization_mode": args.vectorization_mode}
        options["autoreset_mode"] = args.autoreset_mode
    try:
        env_id = args.env_id
        if kind == "gymnasium-subprocess" and registered_from_class(env_id):
            raise ValueError(
                "module:Class runs in this process only (bridge servers make environments from "
                "registered ids); use --kind gymnasium or --vector, or register an id"
            )
        session = make_session(kind, env_id, num_envs=args.num_envs, **options)
    except SESSION_ERRORS as error:
        raise CLIError(f"cannot check {args.env_id!r}: {one_line(error)}") from None
    try:
        report = check_session(session, args.steps, args.seed)
    except BridgeError as error:
        close_session(session)
        raise CLIError(f"{args.env_id}: {one_line(error)}") from None
    closed = close_session(session)
    if closed is not None:
        report.violations.append(closed)
    where = f"{kind}, {args.num_envs} environments, seed {args.seed}"
    print(f"check-env {args.env_id} ({where})")
    print(f"  steps: {report.steps}, transitions checked: {report.transitions}")
    print(f"  episodes finished: {report.episodes}")
    print(f"  violations: {len(report.violations)}")
    for message, count in Counter(report.violations).items():
        print(f"    {message}" + (f" (x{count})" if count > 1 else ""))
    if report.violations:
        raise CLIError(
            f"{args.env_id}: {len(report.violations)} violation(s) in {report.steps} steps; "
            f"first: {report.violations[0]}"
        )
    return 0


def register(subparsers: Any) -> None:
    """Add `check-env` to the `checked-rl` command."""
    parser = subparsers.add_parser(
        "check-env",
        help="check a Gymnasium environment against its contract with a random policy",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("env_id", metavar="ENV_ID", help="Gymnasium id, also module:Name-vN")
    parser.add_argument("--steps", type=int, default=1000, help="batched steps (default 1000)")
    parser.add_argument("--num-envs", type=int, default=4, help="environments (default 4)")
    parser.add_argument(
        "--kind",
        choices=GYMNASIUM_KINDS,
        default=GYMNASIUM_KINDS[0],
        help="session kind: gymnasium (in this process, default), gymnasium-subprocess "
        "(in bridge servers) or gymnasium-vector (a gymnasium.make_vec vector environment)",
    )
    parser.add_argument(
        "--vector", action="store_true", help="check a vector environment: --kind gymnasium-vector"
    )
    parser.add_argument(
        "--vectorization-mode",
        choices=VECTORIZATION_MODES,
        default=None,
        help="gymnasium-vector: how make_vec vectorizes (default: the id's vector entry point "
        "if it has one, else sync)",
    )
    parser.add_argument(
        "--autoreset-mode",
        choices=tuple(AUTORESET_MODES),
        default=None,
        help="gymnasium-vector with sync or async: the autoreset mode (default next-step)",
    )
    parser.add_argument(
        "--num-servers",
        type=int,
        default=1,
        help="bridge servers of a gymnasium-subprocess session (default 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="reset and action seed (default 0)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds a bridge server may take per request (default {DEFAULT_TIMEOUT:g})",
    )
    parser.set_defaults(handler=run)
