"""The pytest plugin of the conformance kit: `pytest --checked-rl-env ID` in any project.

Installed with the package (entry point `checked_rl` in the group `pytest11`), it adds options
and does nothing else unless they are given:

- `--checked-rl-env ID` (repeatable): collect the environment conformance suite for `ID`, a
  registered Gymnasium id, `module:Name-vN` or `module:Class` (a `gymnasium.Env` subclass; see
  `runtime.env_names`); `ID=REFERENCE_ID` adds the reference match against `REFERENCE_ID`.
- `--checked-rl-gae module:function` (repeatable): collect the returns suite for a batched GAE
  with `runtime.returns.gae`'s interface.
- `--checked-rl-examples N`: Hypothesis examples per property (default `DEFAULT_EXAMPLES`).

Each collected test is named `checked-rl::<property>[<ID>]`, so `-k` selects by property or
environment (an environment that always starts in the same state deselects `distinct-seeds`).
A failure shows the assertion or the contract's message and Hypothesis's shrunk example. The
current directory is put on the Python path first, so a project's own modules import.
"""

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["DEFAULT_EXAMPLES", "ENV_PROPERTIES", "GAE_PROPERTIES", "PropertyItem"]

DEFAULT_EXAMPLES = 30
"""Hypothesis examples per collected property unless `--checked-rl-examples` says otherwise."""

ENV_PROPERTIES = (
    "contract", "session-invariants", "seeding", "distinct-seeds", "aliasing", "reference"
)
"""The properties collected for each `--checked-rl-env` (`reference` only with `=REFERENCE`)."""

GAE_PROPERTIES = (
    "matches-spec-float64", "matches-spec-float32", "lam-zero-is-td-residual",
    "discounted-sum-of-residuals", "lam-one-is-monte-carlo", "truncation-bootstraps",
    "rejects-mismatched-arguments", "inputs-unchanged",
)
"""The properties collected for each `--checked-rl-gae`."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("checked-rl", "checked-rl conformance kit")
    group.addoption(
        "--checked-rl-env", action="append", default=[], metavar="ID[=REFERENCE_ID]",
        help="check an environment (Gymnasium id, module:Name-vN or module:Class; "
        "ID=REFERENCE_ID also compares its dynamics with a reference); repeatable",
    )
    group.addoption(
        "--checked-rl-gae", action="append", default=[], metavar="MODULE:FUNCTION",
        help="check a batched GAE (runtime.returns.gae's interface); repeatable",
    )
    group.addoption(
        "--checked-rl-examples", type=int, default=DEFAULT_EXAMPLES, metavar="N",
        help=f"Hypothesis examples per checked-rl property (default {DEFAULT_EXAMPLES})",
    )


class PropertyItem(pytest.Item):
    """One property of the kit over one implementation; `run` builds and runs its test."""

    def __init__(self, *, run: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run = run

    def runtest(self) -> None:
        self.run()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        """The failure's message and Hypothesis's notes (the shrunk example), no traceback."""
        error = excinfo.value
        notes = [str(note) for note in getattr(error, "__notes__", ())]
        return "\n".join([f"{type(error).__name__}: {error}", *notes])

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"checked-rl: {self.name}"


class KitSuite(pytest.Collector):
    """The parent of every collected kit property (it collects nothing itself)."""

    def collect(self) -> list[pytest.Item]:
        return []


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Append the kit's properties for every `--checked-rl-*` option given."""
    envs, gaes = config.getoption("checked_rl_env"), config.getoption("checked_rl_gae")
    if not (envs or gaes):
        return
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    examples = config.getoption("checked_rl_examples")
    if examples < 1:
        raise pytest.UsageError(f"--checked-rl-examples must be at least 1, got {examples}")
    suite = KitSuite.from_parent(session, name="checked-rl", nodeid="checked-rl")
    for name, prop in [*_env_properties(envs, examples), *_gae_properties(gaes)]:
        items.append(PropertyItem.from_parent(suite, name=name, run=_with_settings(prop, examples)))


def _settings(examples: int) -> Any:
    from hypothesis import settings

    return settings(max_examples=examples, deadline=None, database=None)


def _with_settings(prop: Callable[[], Callable[[], None]], examples: int) -> Callable[[], None]:
    """Run the Hypothesis test that `prop()` builds with `examples` examples, no deadline."""

    def run() -> None:
        test = prop()
        if hasattr(test, "hypothesis"):  # a @given test; a state machine runs as it is
            test = _settings(examples)(test)
        test()

    return run


def _env_properties(
    names: list[str], examples: int
) -> Iterator[tuple[str, Callable[[], Any]]]:
    """`(item name, property factory)` for every `--checked-rl-env`."""
    from hypothesis.stateful import run_state_machine_as_test

    from checked_rl.properties import gymnasium_envs as laws
    from checked_rl.properties.sessions import session_machine
    from checked_rl.runtime.sessions import GymnasiumSession

    for name in names:
        env_name, _, reference_name = name.partition("=")
        make_env = _maker(env_name)

        def invariants(make_env: Callable[[], Any] = make_env) -> Callable[[], None]:
            machine = session_machine(lambda: GymnasiumSession([make_env(), make_env()]))
            return lambda: run_state_machine_as_test(machine, settings=_settings(examples))

        suite = {
            "contract": lambda m=make_env: laws.contract_holds_over_random_rollouts(m),
            "session-invariants": invariants,
            "seeding": lambda m=make_env: laws.same_seed_same_episode(m),
            "distinct-seeds": lambda m=make_env: laws.different_seeds_differ(m),
            "aliasing": lambda m=make_env: laws.observations_are_not_aliased(m),
        }
        if reference_name:
            reference = _maker(reference_name)
            suite["reference"] = lambda m=make_env, r=reference: laws.matches_reference(m, r)
        for prop, factory in suite.items():
            yield f"{prop}[{name}]", factory


def _maker(name: str) -> Callable[[], Any]:
    """A factory of fresh environments for `name`, or a one-line usage error."""
    import gymnasium

    from checked_rl.runtime.env_names import resolve_env_id

    try:
        env_id = resolve_env_id(name)
        gymnasium.make(env_id).close()
    except Exception as error:  # whatever the user's module or constructor raises: one line
        raise pytest.UsageError(
            f"--checked-rl-env {name}: {type(error).__name__}: {error}"
        ) from None
    return lambda: gymnasium.make(env_id)


def _gae_properties(names: list[str]) -> Iterator[tuple[str, Callable[[], Any]]]:
    """`(item name, property factory)` for every `--checked-rl-gae`."""
    import torch

    from checked_rl.properties import returns
    from checked_rl.properties.policy_robustness import leaves_inputs_unchanged, rollout_arguments
    from checked_rl.spec import returns as spec_returns

    for name in names:
        gae = _function(name)

        def unchanged(gae: Callable[..., Any] = gae) -> Callable[[], None]:
            fields = ("rewards", "values", "next_values", "terminated", "truncated")
            def call(*args: Any) -> Any:
                return gae(**dict(zip(fields, args, strict=True)), gamma=0.9, lam=0.8)

            return leaves_inputs_unchanged(call, rollout_arguments())

        trace = returns.on_trace(gae)
        suite = {
            "matches-spec-float64": lambda g=gae: returns.gae_matches_spec(g),
            "matches-spec-float32": lambda g=gae: returns.gae_matches_spec(g, dtype=torch.float32),
            "lam-zero-is-td-residual": lambda t=trace: returns.gae_lam_zero_is_td_residual(
                t, spec_returns.td_residuals
            ),
            "discounted-sum-of-residuals": lambda t=trace: (
                returns.gae_is_discounted_sum_of_residuals(t, spec_returns.td_residuals)
            ),
            "lam-one-is-monte-carlo": lambda t=trace: (
                returns.gae_lam_one_is_monte_carlo_minus_values(t, spec_returns.discounted_returns)
            ),
            "truncation-bootstraps": lambda t=trace: (
                returns.truncation_bootstraps_termination_does_not(t)
            ),
            "rejects-mismatched-arguments": lambda g=gae: returns.rejects_mismatched_arguments(g),
            "inputs-unchanged": unchanged,
        }
        for prop, factory in suite.items():
            yield f"gae-{prop}[{name}]", factory


def _function(name: str) -> Callable[..., Any]:
    """The function `module:function` names, or a one-line usage error."""
    module_name, _, attribute = name.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute or "-", None)
    except ImportError as error:
        raise pytest.UsageError(f"--checked-rl-gae {name}: {error}") from None
    if not callable(function):
        raise pytest.UsageError(
            f"--checked-rl-gae {name}: expected module:function naming a callable"
        )
    return function
