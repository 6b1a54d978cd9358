"""Vector environments both ways: `checked_rl/<Id>` from `gymnasium.make_vec`, and the
`gymnasium-vector` session over any `VectorEnv` in every autoreset mode."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import checked_rl  # noqa: F401 - registers checked_rl/<Id>
from checked_rl.runtime.batched_vector_env import BatchedVectorEnv
from checked_rl.runtime.contract import ContractViolation
from checked_rl.runtime.env_registry import register_vector_envs
from checked_rl.runtime.sessions import TORCH_ENVIRONMENTS, VectorSession, make_session

N = 4


def make_vec(env_id: str = "CartPole-v1", n: int = N, **kwargs) -> BatchedVectorEnv:
    return gym.make_vec(f"checked_rl/{env_id}", n, vectorization_mode="vector_entry_point",
                        **kwargs)


def test_every_runtime_environment_is_registered() -> None:
    assert register_vector_envs() == [f"checked_rl/{env_id}" for env_id in TORCH_ENVIRONMENTS]
    for env_id in TORCH_ENVIRONMENTS:
        env = make_vec(env_id)
        assert isinstance(env, gym.vector.VectorEnv)
        assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert env.observation_space.shape == (N, *env.single_observation_space.shape)
        assert env.action_space == gym.vector.utils.batch_space(env.single_action_space, N)
        if isinstance(env.single_action_space, gym.spaces.Discrete):
            assert env.action_space == gym.spaces.MultiDiscrete([env.single_action_space.n] * N)
        else:
            assert env.action_space.shape == (N, *env.single_action_space.shape)
        observation, _ = env.reset(seed=0)
        assert observation in env.observation_space
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert reward.dtype == np.float64 and reward.shape == (N,)  # as SyncVectorEnv's
        assert terminated.dtype == truncated.dtype == np.bool_
        env.close()
        env.close()  # safe twice


def test_import_checked_rl_registers_without_importing_torch(tmp_path) -> None:
    code = (
        "import sys, gymnasium, checked_rl\n"
        "print('torch' in sys.modules, 'checked_rl/CartPole-v1' in gymnasium.registry)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               cwd=tmp_path, timeout=120, check=False)
    assert completed.stdout.strip() == "False True", completed.stderr


def test_the_id_with_its_module_needs_no_prior_import(tmp_path) -> None:
    code = (
        "import gymnasium as gym\n"
        "env = gym.make_vec('checked_rl:checked_rl/CartPole-v1', 3,"
        " vectorization_mode='vector_entry_point')\n"
        "print(type(env).__name__, env.reset(seed=1)[0].shape)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               cwd=tmp_path, timeout=120, check=False)
    assert completed.stdout.strip() == "BatchedVectorEnv (3, 4)", completed.stderr


def replay(env: gym.vector.VectorEnv, seed: int, steps: int, policy: str) -> list:
    """Observations, rewards, flags and final observations of `steps` steps."""
    observation, _ = env.reset(seed=seed)
    record = [observation.copy()]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        if policy == "balance":  # long episodes: 500-step truncations
            actions = (observation[:, 2] + 0.5 * observation[:, 3] > 0).astype(np.int64)
        else:
            actions = rng.integers(0, 2, env.num_envs)
        observation, reward, terminated, truncated, infos = env.step(actions)
        record += [observation.copy(), reward, terminated, truncated]
        mask = infos.get("_final_obs", np.zeros(env.num_envs, bool))
        record += [mask.copy(), *[infos["final_obs"][i] for i in np.flatnonzero(mask)]]
    env.close()
    return record


@pytest.mark.parametrize("policy", ["random", "balance"])
def test_gymnasium_reset_noise_is_sync_vector_env_bit_for_bit(policy: str) -> None:
    sync = SyncVectorEnv([lambda: gym.make("CartPole-v1")] * N,
                         autoreset_mode=AutoresetMode.SAME_STEP)
    ours = replay(make_vec(reset_noise="gymnasium"), 7, 1200, policy)
    theirs = replay(sync, 7, 1200, policy)
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine.dtype == expected.dtype and mine.tobytes() == expected.tobytes()
    assert sum(int(r.sum()) for r in ours[4::6] if r.dtype == bool) > 0


def test_torch_arrays_on_request() -> None:
    env = make_vec(array_type="torch", dtype=torch.float64)
    observation, _ = env.reset(seed=3)
    assert isinstance(observation, torch.Tensor) and observation.dtype == torch.float64
    assert env.single_observation_space.dtype == np.float64  # the environment's dtype
    finals = 0
    for _ in range(30):
        observation, reward, terminated, truncated, infos = env.step(torch.ones(N, dtype=int))
        assert reward.dtype == torch.float64 and truncated.dtype == torch.bool
        for i in np.flatnonzero(infos.get("_final_obs", np.zeros(N, bool))):
            assert isinstance(infos["final_obs"][i], torch.Tensor) and terminated[i]
            finals += 1
    assert finals >= N  # pushing right ends every episode within 30 steps
    env.close()


def test_observations_handed_out_are_copies() -> None:
    env = make_vec()
    first, _ = env.reset(seed=0)
    kept = first.copy()
    env.step(np.zeros(N, dtype=np.int64))
    assert np.array_equal(first, kept)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"reset_noise": "numpy"}, "reset_noise must be 'torch' or 'gymnasium'"),
        ({"reset_noise": "gymnasium", "dtype": torch.float32}, "device and dtype apply"),
        ({"array_type": "jax"}, "array_type must be 'numpy' or 'torch'"),
    ],
)
def test_bad_options_are_one_line(kwargs, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        make_vec(**kwargs)


def test_reset_seeds_and_refuses_options() -> None:
    env = make_vec(reset_noise="gymnasium")
    a, _ = env.reset(seed=[5, 6, 7, 8])
    b, _ = env.reset(seed=5)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="s, s\\+1"):
        env.reset(seed=[5, 5, 5, 5])
    with pytest.raises(ValueError, match="options are not supported"):
        env.reset(options={"reset_mask": np.ones(N, bool)})


def session_record(session, steps: int = 250) -> list[torch.Tensor]:
    out = [session.reset(seed=4).clone()]
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        t = session.step_checked(torch.randint(2, (session.num_envs,), generator=generator))
        out += [t.observation, t.next_observation, t.reward, t.terminated, t.truncated]
        out.append(session.observe().clone())
    session.close()
    return out


@pytest.mark.parametrize("mode", ["next-step", "same-step", "disabled"])
@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_vector_sessions_give_the_in_process_sessions_transitions(mode, vectorization) -> None:
    expected = session_record(make_session("gymnasium", "CartPole-v1", num_envs=3))
    got = session_record(make_session(
        "gymnasium-vector", "CartPole-v1", num_envs=3, vectorization_mode=vectorization,
        autoreset_mode=mode,
    ))
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert sum(int(t.sum()) for t in expected[4::6]) > 3  # several episodes ended


def test_a_vector_session_over_an_existing_vector_env() -> None:
    expected = session_record(make_session("gymnasium", "CartPole-v1", num_envs=3))
    vector_env = make_vec(n=3, reset_noise="gymnasium")
    got = session_record(make_session("gymnasium-vector", vector_env=vector_env))
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    with pytest.raises(ValueError, match="num_envs=2 but the vector_env has 3"):
        make_session("gymnasium-vector", vector_env=make_vec(n=3), num_envs=2)


def test_sync_and_async_default_to_gymnasiums_next_step_mode() -> None:
    with VectorSession.from_id("CartPole-v1", 2, vectorization_mode="sync") as session:
        assert session.autoreset_mode == AutoresetMode.NEXT_STEP
    with VectorSession.from_id("checked_rl/CartPole-v1", 2) as session:  # its entry point
        assert session.autoreset_mode == AutoresetMode.SAME_STEP
        assert isinstance(session.vector_env, BatchedVectorEnv)


def test_vector_session_errors_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"expected a gymnasium\.vector\.VectorEnv"):
        VectorSession(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        VectorSession.from_id("CartPole-v1", 2, vectorization_mode="sync", autoreset_mode="no")
    with pytest.raises(ValueError, match="has its own autoreset mode"):
        VectorSession.from_id("checked_rl/CartPole-v1", 2, autoreset_mode="same-step")
    with pytest.raises(ValueError, match="vectorization_mode must be one of"):
        VectorSession.from_id("CartPole-v1", 2, vectorization_mode="threads")


class NanAfterFive(SyncVectorEnv):
    """A same-step vector environment whose observations turn NaN at the sixth step."""

    def __init__(self) -> None:
        super().__init__([lambda: gym.make("CartPole-v1")] * 2,
                         autoreset_mode=AutoresetMode.SAME_STEP)
        self.t = 0

    def step(self, actions):
        self.t += 1
        observation, *rest = super().step(actions)
        if self.t > 5:
            observation = observation.copy()
            observation[1, 0] = np.nan
        return observation, *rest


def test_a_vector_session_checks_the_contract() -> None:
    session = make_session("gymnasium-vector", vector_env=NanAfterFive(), seed=0)
    for _ in range(5):
        session.step_checked(torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ContractViolation, match=r"next_observation\[env 1, step 5\]"):
        session.step_checked(torch.zeros(2, dtype=torch.int64))


def test_gymnasium_reset_noise_keeps_rewards_in_float64() -> None:
    """Rewards that float32 cannot hold (Pendulum's) must reach the caller as Gymnasium's."""
    env = make_vec(reset_noise="gymnasium")
    env.reset(seed=0)
    transition = env.session.step_checked(torch.zeros(N, dtype=torch.int64))
    assert transition.reward.dtype == torch.float64
    env.close()


def test_an_exception_inside_the_vector_env_is_an_environment_step_error() -> None:
    import tests.faulty_envs  # noqa: F401 - registers RaiseInStep-v0
    from checked_rl.runtime.sessions import EnvironmentStepError

    session = make_session("gymnasium-vector", "RaiseInStep-v0", num_envs=3, seed=0,
                           vectorization_mode="sync")
    with pytest.raises(EnvironmentStepError, match="RaiseInStep-v0 raised in step at step 2: "
                       "RuntimeError: simulated simulator failure"):
        for _ in range(5):
            session.step_checked(torch.ones(3, dtype=torch.int64))
    session.close()


def test_a_gymnasium_session_refuses_a_vector_env_in_one_line() -> None:
    from checked_rl.runtime.sessions import GymnasiumSession

    vector_env = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    with pytest.raises(TypeError, match=r"got a SyncVectorEnv \(a vector environment\); use "
                       r"make_session\('gymnasium-vector', vector_env=env\)"):
        GymnasiumSession(vector_env)
    vector_env.close()


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_box_action_twins_are_sync_vector_env_bit_for_bit(env_id: str) -> None:
    """Continuous actions inside the box, through truncation (200 and 999 steps)."""
    ours = gym.make_vec(f"checked_rl/{env_id}", num_envs=3,
                        vectorization_mode="vector_entry_point", reset_noise="gymnasium")
    theirs = SyncVectorEnv([lambda: gym.make(env_id) for _ in range(3)],
                           autoreset_mode=AutoresetMode.SAME_STEP)
    assert ours.single_action_space == theirs.single_action_space
    assert np.array_equal(ours.reset(seed=5)[0], theirs.reset(seed=5)[0])
    space = ours.single_action_space
    rng = np.random.default_rng(0)
    for _ in range(1001):
        actions = rng.uniform(space.low, space.high, (3, *space.shape)).astype(space.dtype)
        mine, peer = ours.step(actions), theirs.step(actions)
        for got, want in zip(mine[:4], peer[:4], strict=True):
            assert np.array_equal(got, want)
        if "final_obs" in peer[4]:
            assert np.array_equal(mine[4]["_final_obs"], peer[4]["_final_obs"])
    ours.close()
    theirs.close()
