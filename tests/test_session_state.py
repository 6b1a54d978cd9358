"""State: an exact resume through `state_dict` / `load_state_dict` for batched environments and
every session kind that can capture its environments, and a clear refusal from the others."""

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import Phase, settings

from checked_rl.properties.sessions import state_round_trip
from checked_rl.runtime.envs.cartpole import CartPole
from checked_rl.runtime.envs.gridworld import GridWorld
from checked_rl.runtime.sessions import (
    GYMNASIUM_KINDS,
    SESSION_CLASSES,
    CheckedSession,
    SessionStateError,
    StateNotCapturedError,
    make_session,
)
from checked_rl.runtime.sessions.batched_envs import TorchSession
from checked_rl.runtime.sessions.spec_envs import SpecSession
from checked_rl.spec.envs import cartpole, gridworld
from checked_rl.spec.envs.base import Environment, Step

NUM_ENVS = 3
CARTPOLE_LIMIT = {"max_episode_steps": 30}  # truncations as well as terminations
GYMNASIUM_NOISE = {"reset_noise": "gymnasium"}
SMALL_GRID = {"width": 3, "height": 2, "goal": (1, 2)}

STATE_SETTINGS = settings(max_examples=min(settings().max_examples, 20))
SHORT_CARTPOLE_PARAMS = cartpole.Params(max_episode_steps=10)  # truncations every few steps


# Batched environments (the exact resume itself is checked through sessions, below)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"num_envs": 2}, "captured with num_envs=3, this one has num_envs=2"),
        ({"dtype": torch.float64}, "dtype='torch.float32', this one has dtype='torch.float64'"),
        ({"reset_noise": "gymnasium"}, "reset_noise='torch', this one has reset_noise='gymnasium'"),
        (
            {"params": cartpole.Params(max_episode_steps=9)},
            "params={'max_episode_steps': 500}, this one has params={'max_episode_steps': 9}",
        ),
    ],
)
def test_cartpole_load_state_dict_refuses_another_environment(change, fragment) -> None:
    options = {"num_envs": 3, "params": cartpole.Params(), "seed": 0} | change
    state = CartPole(3, seed=1).state_dict()
    with pytest.raises(ValueError, match=r"^CartPole\.load_state_dict: ") as caught:
        CartPole(**options).load_state_dict(state)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_cartpole_load_state_dict_refuses_broken_states() -> None:
    env = CartPole(2, reset_noise="gymnasium", seed=0)
    state = env.state_dict()
    with pytest.raises(ValueError, match=r"the state lacks the entries \['rngs'\]"):
        env.load_state_dict({key: value for key, value in state.items() if key != "rngs"})
    with pytest.raises(ValueError, match="rngs has 1 entries, expected one for each of the 2"):
        env.load_state_dict(state | {"rngs": state["rngs"][:1]})
    with pytest.raises(ValueError, match="expected a dict from state_dict"):
        env.load_state_dict([state])


def test_gridworld_load_state_dict_refuses_other_grids_and_cells_off_the_grid() -> None:
    state = GridWorld(2).state_dict()
    small = gridworld.Params(width=3, height=2, goal=(1, 2))
    with pytest.raises(ValueError, match=r"params=\{'width': 4, 'height': 4, 'goal': \[3, 3\]\}"):
        GridWorld(2, small).load_state_dict(state)
    with pytest.raises(ValueError, match="every cell must lie in the 4 x 4 grid"):
        GridWorld(2).load_state_dict(state | {"cells": torch.tensor([[0, 0], [4, 0]])})


# Sessions


ROUND_TRIPS: dict[str, dict[str, Callable[[], CheckedSession]]] = {
    "spec": {
        "cartpole": lambda: make_session("spec", num_envs=NUM_ENVS, make_kwargs=CARTPOLE_LIMIT),
        "gridworld": lambda: make_session(
            "spec", "GridWorld-v0", num_envs=2, make_kwargs=SMALL_GRID
        ),
    },
    "torch": {
        "cartpole": lambda: make_session("torch", num_envs=NUM_ENVS, make_kwargs=CARTPOLE_LIMIT),
        "cartpole-gymnasium-noise": lambda: make_session(
            "torch", num_envs=NUM_ENVS, make_kwargs=CARTPOLE_LIMIT | GYMNASIUM_NOISE
        ),
        "compiled-cartpole": lambda: make_session(
            "torch", num_envs=2, make_kwargs=CARTPOLE_LIMIT | {"compiled": True}
        ),
        "gridworld": lambda: make_session(
            "torch", "GridWorld-v0", num_envs=2, make_kwargs=SMALL_GRID | {"max_episode_steps": 4}
        ),
    },
}
"""The sessions whose exact resume is checked, by kind; every kind whose class captures its
state (`uncaptured` None) needs at least one."""


@pytest.mark.parametrize(
    ("kind", "case"), [(kind, case) for kind, cases in ROUND_TRIPS.items() for case in cases]
)
def test_state_round_trip(kind: str, case: str) -> None:
    STATE_SETTINGS(state_round_trip(ROUND_TRIPS[kind][case]))()


@pytest.mark.parametrize("kind", SESSION_CLASSES)
def test_every_kind_resumes_exactly_or_says_it_cannot(kind: str) -> None:
    """A kind that captures its state has round-trip cases; any other refuses and stays usable."""
    uncaptured = SESSION_CLASSES[kind].uncaptured
    if uncaptured is None:
        assert ROUND_TRIPS.get(kind), f"the {kind!r} sessions capture their state: add ROUND_TRIPS"
        return
    if kind in GYMNASIUM_KINDS:
        assert uncaptured.startswith("Gymnasium environments (arbitrary Python objects")
    message = (
        f"the '{kind}' session cannot capture the state of its {re.escape(uncaptured)}; "
        "reset it with fresh seeds instead$"
    )
    with make_session(kind, num_envs=2, seed=0) as session:
        assert session.kind == kind
        with pytest.raises(StateNotCapturedError, match=message):
            session.state_dict()
        with pytest.raises(StateNotCapturedError, match=message):
            session.load_state_dict({})
        session.step_checked(torch.tensor([0, 1]))  # still usable


class WithoutStateMethods:
    """A batched environment written for 0.1: CartPole's interface without `state_dict` and
    `load_state_dict`."""

    def __init__(self, num_envs: int) -> None:
        cartpole = CartPole(num_envs)
        for name in (
            *("num_envs", "device", "dtype", "observation_shape", "n_actions"),
            *("observation_low", "observation_high", "reset", "observe", "step"),
        ):
            setattr(self, name, getattr(cartpole, name))


def test_torch_session_over_an_environment_without_state_methods_says_it_cannot() -> None:
    message = (
        r"^TorchSession\.{method}: the 'torch' session cannot capture the state of its batched "
        r"environment WithoutStateMethods \(it has no state_dict/load_state_dict\); "
        "reset it with fresh seeds instead$"
    )
    with TorchSession(WithoutStateMethods(2)) as session:
        session.reset(seed=0)
        with pytest.raises(StateNotCapturedError, match=message.format(method="state_dict")):
            session.state_dict()
        with pytest.raises(StateNotCapturedError, match=message.format(method="load_state_dict")):
            session.load_state_dict({})
        assert session.step_checked(torch.tensor([0, 1])).num_envs == 2  # still usable
    assert TorchSession.uncaptured is None  # decided per session
    with TorchSession(CartPole(2)) as session:
        assert session.uncaptured is None


class ForgetsTheGenerator(TorchSession):
    """Restores physics and step counts but keeps its own reset-noise generator."""

    def _load_env_state_dict(self, envs: Any, observation: torch.Tensor) -> None:
        own = self.env.state_dict()["generator"]
        super()._load_env_state_dict(envs | {"generator": own}, observation)


class ForgetsEpisodeSteps(TorchSession):
    """Restores every environment's step count as 0."""

    def _load_env_state_dict(self, envs: Any, observation: torch.Tensor) -> None:
        steps = torch.zeros_like(envs["steps"])
        super()._load_env_state_dict(envs | {"steps": steps}, observation)


class ForgetsTheStepCount(TorchSession):
    """Restores everything but the session's own step count."""

    def load_state_dict(self, state: Any) -> None:
        super().load_state_dict(state | {"step_count": 0})


@pytest.mark.parametrize(
    ("session_class", "symptom"),
    [
        (ForgetsTheGenerator, r"^observe\(\)"),
        (ForgetsEpisodeSteps, "^truncated"),
        (ForgetsTheStepCount, "^step_count"),
    ],
)
def test_state_round_trip_rejects_a_session_that_forgets(session_class, symptom) -> None:
    prop = state_round_trip(lambda: session_class(CartPole(NUM_ENVS, SHORT_CARTPOLE_PARAMS)))
    failing = settings(max_examples=100, database=None, phases=[Phase.generate])
    with pytest.raises(AssertionError, match=symptom):
        failing(prop)()


def test_load_state_dict_refuses_another_kind_or_size_in_one_line() -> None:
    with make_session("torch", num_envs=2, seed=0) as source:
        state = source.state_dict()
    for kind, num_envs, fragment in [
        ("spec", 2, "captured with kind='torch', this one has kind='spec'"),
        ("torch", 3, "captured with num_envs=2, this one has num_envs=3"),
    ]:
        with make_session(kind, num_envs=num_envs, seed=1) as session:
            with pytest.raises(ValueError) as caught:
                session.load_state_dict(state)
            assert fragment in str(caught.value) and "\n" not in str(caught.value)
            session.step_checked(torch.zeros(num_envs, dtype=torch.int64))  # left as it was
    with make_session("torch", num_envs=2, make_kwargs=GYMNASIUM_NOISE) as session:
        with pytest.raises(ValueError, match="reset_noise='torch', this one has reset_noise="):
            session.load_state_dict(state)
        with pytest.raises(SessionStateError, match="load_state_dict raised ValueError"):
            session.observe()


def test_state_dict_holds_copies() -> None:
    with make_session("torch", num_envs=2, seed=0) as session:
        observation, physics = session.observe().clone(), session.env.get_state()[0]
        state = session.state_dict()
        state["observation"].add_(1.0)
        state["envs"]["physics"].add_(1.0)
        assert torch.equal(session.observe(), observation)
        assert torch.equal(session.env.get_state()[0], physics)


def test_state_dict_needs_a_usable_session_with_dataclass_states() -> None:
    with make_session("spec") as session, pytest.raises(SessionStateError, match="reset"):
        session.state_dict()
    with SpecSession(float_state_env(), 2) as session:
        session.reset(seed=0)
        with pytest.raises(StateNotCapturedError, match="'spec' session captures dataclass"):
            session.state_dict()


def float_state_env() -> Environment:
    """A one-number spec environment whose state is a float, not a dataclass."""

    def reset(params: None, rng: np.random.Generator) -> tuple[float, np.ndarray]:
        return 0.0, np.zeros(1, dtype=np.float32)

    def step(params: None, state: float, action: int) -> Step[float]:
        return Step(state, np.zeros(1, dtype=np.float32), 0.0, False, False)

    return Environment("FloatState", None, reset, step, (1,), np.dtype(np.float32), 2)
