"""Box actions through every session kind: checked, clipped for the environment, recorded as given.

Real Gymnasium environments (Pendulum-v1, MountainCarContinuous-v0) in this process and in bridge
servers, the spec and torch twins, the check-env command; no mocks.
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from checked_rl.properties.actions import (
    action_check_agrees_with_reference,
    clipping_matches_spec,
    session_receives_clipped_actions,
)
from checked_rl.runtime.cli.check_env import check_session
from checked_rl.runtime.contract import (
    Contract,
    ContractViolation,
    check_box_actions,
    check_transition,
    clip_actions,
    received_actions,
)
from checked_rl.runtime.contract import Transition as RuntimeTransition
from checked_rl.runtime.sessions import (
    SessionStateError,
    TorchSession,
    make_session,
)
from checked_rl.spec.envs import mountain_car_continuous, pendulum
from checked_rl.spec.envs.base import Box

CONTINUOUS = ["MountainCarContinuous-v0", "Pendulum-v1"]
KINDS = ["spec", "torch", "gymnasium", "gymnasium-subprocess"]
PENDULUM_BOX = pendulum.action_space(pendulum.Params())
CAR_BOX = mountain_car_continuous.action_space(mountain_car_continuous.Params())


def _random(generator: torch.Generator, n: int, scale: float = 3.0) -> torch.Tensor:
    """Actions `[n, 1]` in float32, uniform in `[-scale, scale]`: often outside the box."""
    return (torch.rand((n, 1), generator=generator, dtype=torch.float64) * 2 - 1).mul(scale).float()


# The runtime check and clipping against the spec.

test_clipping_matches_spec = clipping_matches_spec(clip_actions)
test_action_check_agrees_with_reference = action_check_agrees_with_reference(check_box_actions)


def _torch_car(contract: Contract | None = None, session_class: type = TorchSession):
    def make():
        session = make_session("torch", "MountainCarContinuous-v0", num_envs=2, seed=4)
        env = session.env
        return (
            session_class(env, contract=contract)
            if contract or session_class is not TorchSession
            else session
        )

    return make


test_torch_session_receives_clipped_actions = session_receives_clipped_actions(
    _torch_car(), CAR_BOX
)
test_spec_session_receives_clipped_actions = session_receives_clipped_actions(
    lambda: make_session("spec", "Pendulum-v1", num_envs=2, seed=4), PENDULUM_BOX
)


def _fails(prop) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any failure of the property
        prop()


class _RecordsClipped(TorchSession):
    """Buggy: records the clipped actions (log-probabilities of actions never sampled)."""

    def step_checked(self, actions):
        return super().step_checked(clip_actions(self.action_box, actions))


def test_the_session_property_catches_buggy_sessions() -> None:
    # A session clipping into a wider box than the environment's: the car pays for 5.0, not 1.0.
    wide = Contract.from_env(make_session("torch", "MountainCarContinuous-v0").env)
    wide = wide.replace(action_box=Box((1,), -10.0, 10.0))
    _fails(session_receives_clipped_actions(_torch_car(contract=wide), CAR_BOX))
    _fails(session_receives_clipped_actions(_torch_car(session_class=_RecordsClipped), CAR_BOX))


def test_the_clipping_property_catches_a_scalar_clip() -> None:
    def scalar_bounds(box: Box, actions: torch.Tensor) -> torch.Tensor:
        return actions.clamp(float(box.low.min()), float(box.high.max()))

    def float64_bounds(box: Box, actions: torch.Tensor) -> torch.Tensor:
        low, high = (torch.from_numpy(bound.copy()) for bound in (box.low, box.high))
        return torch.minimum(torch.maximum(actions.double(), low), high)

    _fails(clipping_matches_spec(scalar_bounds))
    _fails(clipping_matches_spec(float64_bounds))


def test_the_check_property_catches_a_check_without_finiteness() -> None:
    def shapes_only(contract, actions, *, step=None):
        box = contract.action_box
        if tuple(actions.shape[1:]) != box.shape or actions.ndim != 1 + len(box.shape):
            check_box_actions(contract, actions, step=step)

    _fails(action_check_agrees_with_reference(shapes_only))


def test_the_action_functions_refuse_a_discrete_contract() -> None:
    discrete = Contract((1,), 2)
    for function in (check_box_actions, received_actions):
        with pytest.raises(ValueError, match="the contract has discrete actions"):
            function(discrete, torch.zeros((1, 1)))


# The semantics, with the guide's numbers.


@pytest.mark.parametrize("kind", KINDS)
def test_pendulum_receives_2_and_records_2_7(kind: str) -> None:
    """The guide's example: 2.7 on [-2, 2] steps the pendulum with 2.0; 2.7 is recorded."""
    sessions = [make_session(kind, "Pendulum-v1", seed=11) for _ in range(2)]
    try:
        beyond = sessions[0].step_checked(torch.tensor([[2.7]]))
        edge = sessions[1].step_checked(torch.tensor([[2.0]]))
    finally:
        for session in sessions:
            session.close()
    assert beyond.action.tolist() == [[np.float32(2.7)]] and beyond.action.dtype == torch.float32
    assert edge.action.tolist() == [[2.0]]
    assert torch.equal(beyond.next_observation, edge.next_observation)
    assert torch.equal(beyond.reward, edge.reward)


@pytest.mark.parametrize("kind", KINDS)
def test_the_car_is_charged_for_the_clipped_force(kind: str) -> None:
    """Every kind steps MountainCarContinuous with the clipped action, so its cost is that of
    the force applied (0.1 * 1.0**2), not of the action sampled (0.1 * 5.0**2)."""
    with make_session(kind, "MountainCarContinuous-v0", seed=2) as session:
        transition = session.step_checked(torch.tensor([[5.0]]))
    assert transition.action.tolist() == [[5.0]]
    assert transition.reward.item() == pytest.approx(-0.1, rel=1e-6)


# Bad actions are refused in one line, by every kind, before an environment sees them.

BAD = {
    "rank": (torch.zeros(2), "contract violation: action[step 1] has shape (2,), expected (N, 1)"),
    "width": (torch.zeros((2, 2)), "action[step 1] has shape (2, 2), expected (N, 1)"),
    "float64": (torch.zeros((2, 1), dtype=torch.float64), "has dtype float64, expected float32"),
    "int64": (torch.zeros((2, 1), dtype=torch.int64), "has dtype int64, expected float32"),
    "bfloat16": (torch.zeros((2, 1), dtype=torch.bfloat16), "has dtype bfloat16, expected float32"),
    "nan": (torch.tensor([[0.5], [float("nan")]]), "action[env 1, step 1] entry 0 = nan is not"),
    "inf": (torch.tensor([[float("inf")], [0.0]]), "action[env 0, step 1] entry 0 = inf is not"),
    "-inf": (torch.tensor([[0.0], [-float("inf")]]), "action[env 1, step 1] entry 0 = -inf is"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_bad_actions_are_refused_in_one_line(kind: str) -> None:
    with make_session(kind, "Pendulum-v1", num_envs=2, seed=0) as session:
        for name, (actions, message) in BAD.items():
            session.reset(seed=0)
            session.step_checked(torch.zeros((2, 1)))
            before = session.observe().clone()
            with pytest.raises(ContractViolation) as caught:
                session.step_checked(actions)
            assert message in str(caught.value) and "\n" not in str(caught.value), name
            with pytest.raises(SessionStateError, match="call reset"):
                session.step_checked(torch.zeros((2, 1)))
            session.reset(seed=0)
            session.step_checked(torch.zeros((2, 1)))
            assert torch.equal(session.observe(), before), name  # nothing was stepped
        for rows in (torch.zeros((3, 1)), torch.zeros(3), torch.zeros((1, 1))):
            with pytest.raises(ValueError, match="expected 2 actions, got shape"):
                session.step_checked(rows)
        with pytest.raises(TypeError, match="actions must be a tensor"):
            session.step_checked(np.zeros((2, 1), np.float32))


def test_check_transition_takes_continuous_actions() -> None:
    contract = Contract.from_spec_env(pendulum.environment())
    observation = torch.zeros((2, 3))
    batch = RuntimeTransition(
        observation, torch.tensor([[2.7], [-9.0]]), torch.zeros(2), observation,
        torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool),
    )  # fmt: skip
    check_transition(contract, batch, step=0)
    for actions, message in (
        (torch.tensor([[0.0], [float("nan")]]), "action[env 1, step 0] entry 0 = nan"),
        (torch.tensor([[float("-inf")], [0.0]]), "action[env 0, step 0] entry 0 = -inf"),
        (torch.zeros((2, 1), dtype=torch.float64), "has dtype float64, expected float32"),
        (torch.zeros((2, 2)), "action[step 0] has shape (2, 2), expected (2, 1)"),
        (torch.zeros(2, dtype=torch.int64), "action[step 0] has shape (2,), expected (2, 1)"),
    ):
        with pytest.raises(
            ContractViolation,
            match=re.escape(message),
        ):
            check_transition(
                contract, batch.__class__(**{**batch.__dict__, "action": actions}), step=0
            )
    discrete = Contract.from_spec_env(pendulum.environment()).replace(n_actions=2, action_box=None)
    message = "action[step 0] has shape (2, 1), expected (2,)"
    with pytest.raises(ContractViolation, match=re.escape(message)):
        check_transition(discrete, batch, step=0)


# The four kinds agree.


@pytest.mark.parametrize("env_id", CONTINUOUS)
def test_in_process_and_bridge_give_the_same_transitions(env_id: str) -> None:
    """Same seeds, same actions (often outside the box): the Gymnasium kinds agree bit for bit,
    and the spec session, whose physics is Gymnasium's, agrees with them exactly too."""
    sessions = [
        make_session(kind, env_id, num_envs=3, seed=7)
        for kind in ("gymnasium", "gymnasium-subprocess", "spec")
    ]
    sessions.append(make_session("gymnasium-subprocess", env_id, num_envs=3, seed=7, num_servers=2))
    generator = torch.Generator().manual_seed(1)
    try:
        for _ in range(60):
            actions = _random(generator, 3)
            first, *others = (session.step_checked(actions) for session in sessions)
            for other in others:
                for name in (
                    "observation",
                    "action",
                    "next_observation",
                    "reward",
                    "terminated",
                    "truncated",
                ):
                    assert torch.equal(getattr(first, name), getattr(other, name)), name
            assert torch.equal(first.action, actions)
    finally:
        for session in sessions:
            session.close()


@pytest.mark.parametrize("env_id", CONTINUOUS)
def test_spec_and_gymnasium_seeded_torch_sessions_agree(env_id: str) -> None:
    make_kwargs = {"max_episode_steps": 9}
    spec = make_session("spec", env_id, num_envs=3, seed=5, make_kwargs=make_kwargs)
    twin = make_session(
        "torch", env_id, num_envs=3, seed=5, dtype=torch.float64,
        make_kwargs={**make_kwargs, "reset_noise": "gymnasium"},
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    for _ in range(25):
        actions = _random(generator, 3)
        want, got = spec.step_checked(actions), twin.step_checked(actions)
        np.testing.assert_allclose(got.next_observation, want.next_observation, atol=1e-5)
        np.testing.assert_allclose(got.reward, want.reward, atol=1e-5)
        assert torch.equal(got.action, want.action) and torch.equal(got.truncated, want.truncated)
    for session in (spec, twin):
        report = check_session(session, steps=40, seed=1)
        assert report.violations == [] and report.episodes > 0


@pytest.mark.parametrize("env_id", CONTINUOUS)
@pytest.mark.parametrize("kind", ["spec", "torch"])
def test_session_state_round_trips(kind: str, env_id: str) -> None:
    generator = torch.Generator().manual_seed(3)
    batches = [_random(generator, 2) for _ in range(4)]
    session = make_session(kind, env_id, num_envs=2, seed=3, make_kwargs={"max_episode_steps": 3})
    session.step_checked(batches[0])
    saved = session.state_dict()
    first = [session.step_checked(actions) for actions in batches]
    fresh = make_session(kind, env_id, num_envs=2, make_kwargs={"max_episode_steps": 3})
    fresh.load_state_dict(saved)
    again = [fresh.step_checked(actions) for actions in batches]
    for x, y in zip(first, again, strict=True):
        for name in ("observation", "action", "next_observation", "reward", "truncated"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name


@pytest.mark.parametrize("env_id", CONTINUOUS)
@pytest.mark.parametrize("kind", ["gymnasium", "gymnasium-subprocess"])
def test_check_env_command_passes(env_id: str, kind: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "checked_rl.runtime.cli", "check-env", env_id, "--steps", "250",
         "--kind", kind],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "violations: 0" in result.stdout and "episodes finished: " in result.stdout


def test_check_env_samples_the_box() -> None:
    """Random actions fill the box (both halves of it) in the box's dtype, never beyond it."""
    with make_session("torch", "Pendulum-v1", num_envs=64) as session:
        from checked_rl.runtime.cli.check_env import random_actions

        actions = random_actions(session, torch.Generator().manual_seed(0))
    assert actions.shape == (64, 1) and actions.dtype == torch.float32
    assert actions.min() >= -2.0 and actions.max() <= 2.0
    assert actions.min() < -1.0 and actions.max() > 1.0


# The bridge's server on its own: what a client may send it.


def _reply(server, header: dict, arrays: dict | None = None):
    from checked_rl.runtime.bridge.protocol import PREFIX, decode_body

    frame = server.handle(header, arrays or {})
    return decode_body(frame[: PREFIX.size], frame[PREFIX.size :])


def test_a_server_describes_the_action_box_and_refuses_actions_outside_it() -> None:
    from checked_rl.runtime.bridge.messages import ReplySchema, check_reply
    from checked_rl.runtime.bridge.server import GymServer

    server = GymServer("Pendulum-v1", 2, {})
    try:
        header, arrays = _reply(server, {"cmd": "describe"})
        check_reply("describe", header, arrays, ReplySchema(2))
        assert header["action_space"] == {"type": "Box", "shape": [1], "dtype": "<f4"}
        assert arrays["action_low"].tolist() == [-2.0] and arrays["action_high"].tolist() == [2.0]
        with pytest.raises(ValueError, match="missing array 'action_low'"):
            check_reply("describe", header, {k: arrays[k] for k in ("low", "high")}, ReplySchema(2))
        assert _reply(server, {"cmd": "reset", "seeds": [0, 1]})[0]["ok"]
        edge = np.array([[2.0], [-2.0]], np.float32)
        assert _reply(server, {"cmd": "step"}, {"actions": edge})[0]["ok"]
        for actions, message in (
            (np.array([[2.0], [2.5]], np.float32), "actions[1] = [2.5] is not a finite action"),
            (np.array([[np.nan], [0.0]], np.float32), "actions[0] = [nan] is not a finite action"),
            (np.array([[0.0], [-np.inf]], np.float32), "actions[1] = [-inf] is not a finite"),
            (np.zeros((2, 1)), "has dtype float64, expected float32"),
            (np.zeros(2, np.float32), "has shape (2,), expected (2, 1)"),
            (np.zeros(2, np.int64), "has shape (2,), expected (2, 1)"),
        ):
            header, _ = _reply(server, {"cmd": "step"}, {"actions": actions})
            assert header["ok"] is False and header["kind"] == "protocol", header
            assert message in header["error"], header["error"]
    finally:
        server.handle({"cmd": "close"}, {})
    discrete = GymServer("CartPole-v1", 1, {})
    try:
        header, arrays = _reply(discrete, {"cmd": "describe"})
        assert "action_low" not in arrays
        assert _reply(discrete, {"cmd": "reset", "seeds": None})[0]["ok"]
        header, _ = _reply(discrete, {"cmd": "step"}, {"actions": np.zeros((1, 1), np.float32)})
        assert "expected 'actions' of shape (1,) and an integer dtype" in header["error"]
        assert _reply(discrete, {"cmd": "step"}, {"actions": np.array([1])})[0]["ok"]
    finally:
        discrete.handle({"cmd": "close"}, {})
