"""Checked sessions: the state machines for every in-process kind, and their failure modes."""

from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from hypothesis import settings

import tests.faulty_envs
from checked_rl.properties.sessions import session_machine, sessions_agree_machine
from checked_rl.runtime.contract import ContractViolation
from checked_rl.runtime.sessions import (
    CPU_ONLY_KINDS,
    GYMNASIUM_KINDS,
    KINDS,
    SESSION_CLASSES,
    CheckedSession,
    EnvironmentStepError,
    SessionStateError,
    make_session,
)
from checked_rl.runtime.sessions.batched_envs import TorchSession
from checked_rl.runtime.sessions.gymnasium_envs import GymnasiumSession
from checked_rl.runtime.sessions.spec_envs import SpecSession
from checked_rl.spec.envs import cartpole, gridworld
from checked_rl.spec.envs.base import Environment, Step

NUM_ENVS = 3
EPISODE_LIMIT = 30  # short enough for truncations, long enough for terminations
TORCH_FLOAT64_ATOL = 1e-6  # float64 torch observations vs the float32-rounded reference
MACHINE_SETTINGS = settings(
    max_examples=min(settings().max_examples, 15), stateful_step_count=15
)  # fewer runs than the profile: each run steps sessions hundreds of times

CARTPOLE_LIMIT = {"max_episode_steps": EPISODE_LIMIT}
GYMNASIUM_NOISE = {"reset_noise": "gymnasium"}


def cartpole_reset(rng: np.random.Generator) -> np.ndarray:
    """The reference reset observation of CartPole-v1 from `rng`."""
    return cartpole.reset(cartpole.Params(), rng)[1]


def in_cartpole_reset_range(observation: torch.Tensor) -> bool:
    """Every CartPole reset entry lies in [-0.05, 0.05)."""
    return bool((observation.abs() <= 0.05).all())


def machine_test(machine: Any) -> Any:
    """The machine's TestCase under `MACHINE_SETTINGS`."""
    machine.TestCase.settings = MACHINE_SETTINGS
    return machine.TestCase


TestSpecCartPoleSession = machine_test(
    session_machine(
        lambda: make_session("spec", num_envs=NUM_ENVS, make_kwargs=CARTPOLE_LIMIT),
        reference_reset=cartpole_reset,
        in_reset_distribution=in_cartpole_reset_range,
    )
)

SMALL_GRID = {"width": 3, "height": 2, "goal": (1, 2)}

TestSpecGridWorldSession = machine_test(
    session_machine(
        lambda: make_session("spec", "GridWorld-v0", num_envs=2, make_kwargs=SMALL_GRID),
        reference_reset=lambda rng: gridworld.reset(gridworld.Params(**SMALL_GRID), rng)[1],
    )
)

TestTorchGridWorldSession = machine_test(
    session_machine(
        lambda: make_session("torch", "GridWorld-v0", num_envs=2, make_kwargs=SMALL_GRID),
        reference_reset=lambda rng: gridworld.reset(gridworld.Params(**SMALL_GRID), rng)[1],
    )
)

TestGridWorldSessionsAgree = machine_test(
    sessions_agree_machine(
        {
            kind: lambda kind=kind: make_session(
                kind, "GridWorld-v0", num_envs=2, make_kwargs={**SMALL_GRID, "max_episode_steps": 9}
            )
            for kind in ("spec", "torch")
        }
    )
)

TestTorchCartPoleSession = machine_test(
    session_machine(
        lambda: make_session("torch", num_envs=NUM_ENVS, make_kwargs=CARTPOLE_LIMIT),
        in_reset_distribution=in_cartpole_reset_range,
    )
)

TestTorchCartPoleGymnasiumNoiseSession = machine_test(
    session_machine(
        lambda: make_session(
            "torch",
            num_envs=NUM_ENVS,
            make_kwargs={**CARTPOLE_LIMIT, **GYMNASIUM_NOISE},
        ),
        reference_reset=cartpole_reset,
        in_reset_distribution=in_cartpole_reset_range,
    )
)

TestGymnasiumCartPoleSession = machine_test(
    session_machine(
        lambda: make_session("gymnasium", num_envs=NUM_ENVS, make_kwargs=CARTPOLE_LIMIT),
        reference_reset=cartpole_reset,
        in_reset_distribution=in_cartpole_reset_range,
    )
)

TestGymnasiumInstancesSession = machine_test(
    session_machine(
        lambda: GymnasiumSession([tests.faulty_envs.Drift(episode_length=7) for _ in range(2)]),
        reference_reset=lambda rng: rng.uniform(-1.0, 1.0, 3).astype(np.float32),
    )
)

TestCartPoleSessionsAgree = machine_test(
    sessions_agree_machine(
        {
            "spec": lambda: make_session("spec", num_envs=NUM_ENVS, make_kwargs=CARTPOLE_LIMIT),
            "gymnasium": lambda: make_session(
                "gymnasium", num_envs=NUM_ENVS, make_kwargs=CARTPOLE_LIMIT
            ),
            "torch": lambda: make_session(
                "torch",
                num_envs=NUM_ENVS,
                dtype=torch.float64,
                make_kwargs={**CARTPOLE_LIMIT, **GYMNASIUM_NOISE},
            ),
        },
        atol={"torch": TORCH_FLOAT64_ATOL},
    )
)


# make_session


@pytest.mark.parametrize(
    ("kind", "session_class"),
    [("spec", SpecSession), ("torch", TorchSession), ("gymnasium", GymnasiumSession)],
)
def test_make_session_kinds(kind: str, session_class: type) -> None:
    with make_session(kind, num_envs=2, seed=3) as session:
        assert isinstance(session, session_class) and isinstance(session, CheckedSession)
        assert (session.num_envs, session.observation_shape, session.n_actions) == (2, (4,), 2)
        assert session.device == torch.device("cpu")
        assert session.step_count == 0 and session.kind == kind
        assert session.observe().shape == (2, 4)  # reset by the factory: seed was given


def test_make_session_same_seed_same_start_across_kinds() -> None:
    starts = [make_session(kind, num_envs=2, seed=11).observe() for kind in ("spec", "gymnasium")]
    assert torch.equal(*starts)
    for i in range(2):
        expected, _ = gymnasium.make("CartPole-v1").reset(seed=11 + i)
        assert torch.equal(starts[0][i], torch.from_numpy(expected))


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        (("pybullet",), {}, "kind must be one of ['spec', 'torch', 'gymnasium'"),
        (("spec", "Pong-v5"), {}, "provide the environments ['Acrobot-v1', 'CartPole-v1',"),
        (("torch", "Pong-v5"), {}, "provide the environments ['Acrobot-v1', 'CartPole-v1',"),
        (("spec",), {"device": "cuda"}, "run on the CPU"),
        (("spec",), {"make_kwargs": {"gravity_": 1.0}}, "unknown make_kwargs ['gravity_']"),
    ],
)
def test_make_session_refuses_unknown_choices(
    args: tuple[str, ...], kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValueError) as caught:
        make_session(*args, **kwargs)
    assert fragment in str(caught.value)
    assert set(KINDS) == {"spec", "torch", "gymnasium", "gymnasium-subprocess", "gymnasium-vector"}


def test_kind_lists_are_read_from_the_session_classes() -> None:
    assert CPU_ONLY_KINDS == ("spec", "gymnasium", "gymnasium-vector")
    assert GYMNASIUM_KINDS == ("gymnasium", "gymnasium-subprocess", "gymnasium-vector")
    for kind, session_class in SESSION_CLASSES.items():
        assert (kind in CPU_ONLY_KINDS) == session_class.cpu_only
        assert (kind in GYMNASIUM_KINDS) == session_class.takes_gymnasium_ids


@pytest.mark.parametrize("kind", CPU_ONLY_KINDS)
def test_make_session_refuses_a_device_for_cpu_only_kinds(kind: str) -> None:
    with pytest.raises(ValueError, match=f"'{kind}' sessions run on the CPU, got device=meta"):
        make_session(kind, device="meta")


def test_make_session_dtype_and_limits_reach_the_environment() -> None:
    with make_session("torch", num_envs=2, dtype=torch.float64, seed=0) as session:
        assert session.observe().dtype == torch.float64
        assert session.contract.observation_dtype == np.float64
    with make_session("spec", make_kwargs={"max_episode_steps": 2}, seed=0) as session:
        session.step_checked(torch.tensor([0]))
        assert session.step_checked(torch.tensor([1])).truncated.tolist() == [True]
        assert session.step_checked(torch.tensor([1])).reward.dtype == torch.float32


# The protocol's refusals


def test_step_before_reset_is_refused() -> None:
    with make_session("spec") as session, pytest.raises(SessionStateError, match="reset"):
        session.step_checked(torch.tensor([0]))


def test_closed_session_is_refused_and_close_is_idempotent() -> None:
    session = make_session("gymnasium", num_envs=2, seed=0)
    session.close()
    session.close()
    with pytest.raises(SessionStateError, match="closed"):
        session.reset(seed=0)
    with pytest.raises(SessionStateError, match="closed"):
        session.step_checked(torch.tensor([0, 0]))


def test_actions_of_the_wrong_shape_are_refused() -> None:
    with make_session("spec", num_envs=2, seed=0) as session:
        with pytest.raises(ValueError, match=r"actions must have shape \(2,\)"):
            session.step_checked(torch.tensor([0, 1, 0]))
        session.step_checked(torch.tensor([0, 1], dtype=torch.int32))  # any integer dtype
        assert session.step_count == 1


# Faults inside Gymnasium environments


def faulty_session(env_id: str, num_envs: int = 3, **make_kwargs: Any) -> GymnasiumSession:
    """A session whose environment 1 misbehaves at its third step after `reset(seed=10)`."""
    session = GymnasiumSession.from_id(
        env_id, num_envs, make_kwargs={"fault_seeds": [11], **make_kwargs}
    )
    session.reset(seed=10)
    return session


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        ("NanAtStep-v0", "next_observation[env 1, step 2] entry 1 = nan is not finite"),
        ("InfiniteReward-v0", "reward[env 1, step 2] = inf is not finite"),
        ("OutOfBox-v0", "next_observation[env 1, step 2] entry 0 = 100.0 is out of bounds"),
        ("WrongShape-v0", "next_observation[env 1, step 2] has shape (4,), expected (3,)"),
    ],
)
def test_contract_faults_name_env_and_step(env_id: str, message: str) -> None:
    with faulty_session(env_id) as session:
        session.step_checked(torch.zeros(3, dtype=torch.int64))
        session.step_checked(torch.zeros(3, dtype=torch.int64))
        with pytest.raises(ContractViolation) as caught:
            session.step_checked(torch.zeros(3, dtype=torch.int64))
        assert str(caught.value).startswith(f"contract violation: {message}")
        with pytest.raises(SessionStateError, match="refused because step 2 raised"):
            session.step_checked(torch.zeros(3, dtype=torch.int64))
        session.reset(seed=0)  # a reset makes it usable again
        assert session.step_checked(torch.zeros(3, dtype=torch.int64)).num_envs == 3


def test_exception_in_step_is_wrapped_with_env_and_step() -> None:
    with faulty_session("RaiseInStep-v0") as session:
        session.step_checked(torch.ones(3, dtype=torch.int64))
        session.step_checked(torch.ones(3, dtype=torch.int64))
        with pytest.raises(EnvironmentStepError) as caught:
            session.step_checked(torch.ones(3, dtype=torch.int64))
        assert "RaiseInStep-v0 environment 1 raised in step (action 1) at step 2" in str(
            caught.value
        )
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert "simulated simulator failure" in str(caught.value.__cause__)
        with pytest.raises(SessionStateError):
            session.observe()


def test_gymnasium_session_refuses_other_spaces() -> None:
    with pytest.raises(ValueError, match="Box observation space"):
        GymnasiumSession.from_id("FrozenLake-v1")
    envs = [tests.faulty_envs.Drift(), gymnasium.make("CartPole-v1")]
    with pytest.raises(ValueError, match="environment 1 has"):
        GymnasiumSession(envs)


# Faults inside spec environments


def broken_spec_env(*, nan_reset: bool = False) -> Environment:
    """A one-number spec environment that raises on action 1 (or resets to NaN)."""

    def reset(params: None, rng: np.random.Generator) -> tuple[float, np.ndarray]:
        value = np.nan if nan_reset else 0.0
        return value, np.array([value], dtype=np.float32)

    def step(params: None, state: float, action: int) -> Step[float]:
        if action == 1:
            raise ZeroDivisionError("the simulator divided by zero")
        return Step(state, np.array([state], dtype=np.float32), 0.0, False, False)

    return Environment("Broken", None, reset, step, (1,), np.dtype(np.float32), 2)


def test_spec_environment_exception_is_wrapped() -> None:
    with SpecSession(broken_spec_env(), 2) as session:
        session.reset(seed=0)
        with pytest.raises(EnvironmentStepError, match="Broken environment 1 raised at step 0"):
            session.step_checked(torch.tensor([0, 1]))


def test_invalid_reset_observation_is_rejected_by_reset() -> None:
    with SpecSession(broken_spec_env(nan_reset=True), 2) as session:
        with pytest.raises(ContractViolation, match=r"observation\[env 0\] entry 0 = nan"):
            session.reset(seed=0)
        with pytest.raises(SessionStateError, match="reset raised ContractViolation"):
            session.observe()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_session_on_cuda_agrees_with_cpu() -> None:
    sessions = [
        make_session("torch", num_envs=4, device=device, seed=5, make_kwargs=GYMNASIUM_NOISE)
        for device in ("cpu", "cuda")
    ]
    actions = torch.tensor([0, 1, 1, 0])
    for _ in range(50):
        cpu, cuda = (s.step_checked(actions.to(s.device)) for s in sessions)
        assert cuda.device.type == "cuda"
        torch.testing.assert_close(cuda.next_observation.cpu(), cpu.next_observation)
        assert torch.equal(cuda.done.cpu(), cpu.done)


class TextReward(tests.faulty_envs.Drift):
    """Returns its reward as text: not a number."""

    def step(self, action: int) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        observation, _, terminated, truncated, info = super().step(action)
        return observation, "one", terminated, truncated, info


def test_non_numeric_reward_is_a_contract_violation() -> None:
    with GymnasiumSession([tests.faulty_envs.Drift(), TextReward()]) as session:
        session.reset(seed=0)
        with pytest.raises(ContractViolation, match=r"reward\[env 1, step 0\] has dtype str"):
            session.step_checked(torch.tensor([0, 1]))


class WrongDtype(tests.faulty_envs.Drift):
    """Returns a float64 observation at the fault step, where the space says float32."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        return observation.astype(np.float64), reward


def test_observation_of_another_dtype_is_a_contract_violation() -> None:
    envs = [tests.faulty_envs.Drift(), WrongDtype(fault_step=1)]
    with GymnasiumSession(envs) as session:
        session.reset(seed=0)
        with pytest.raises(ContractViolation) as caught:
            session.step_checked(torch.tensor([0, 1]))
    assert str(caught.value) == (
        "contract violation: next_observation[env 1, step 0] has dtype float64, expected float32"
    )
