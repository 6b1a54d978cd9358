"""The engines of the batched CartPole: which one steps by default, and that they agree.

Small CPU batches step in NumPy (`runtime.envs.cartpole_host`), large ones compiled, the rest
with torch operations. The spec properties in test_runtime_envs.py run on the default engine of
their sizes (NumPy); here the eager torch step gets them too, and the NumPy step is held to the
spec bit for bit in float64 and to the eager and compiled steps' episodes.
"""

import numpy as np
import pytest
import torch

from checked_rl.properties import cartpole as cartpole_properties
from checked_rl.runtime.envs import cartpole_host
from checked_rl.runtime.envs.cartpole import COMPILE_MIN_ENVS, HOST_MAX_ENVS, CartPole
from checked_rl.spec.envs import cartpole


def make_eager_cartpole(num_envs: int, params: cartpole.Params, dtype: torch.dtype) -> CartPole:
    return CartPole(num_envs, params, dtype=dtype, seed=0, compiled=False)


test_eager_step_matches_spec_float64 = cartpole_properties.step_matches_spec(make_eager_cartpole)
test_eager_step_matches_spec_float32 = cartpole_properties.step_matches_spec(
    make_eager_cartpole, dtype=torch.float32
)

PARAMS = [
    cartpole.Params(),
    cartpole.Params(integrator="semi-implicit euler", sutton_barto_reward=True),
    cartpole.Params(max_episode_steps=None, tau=0.05),
]


def test_which_engine_steps_by_default() -> None:
    # Deciding costs nothing: NumPy on the CPU below HOST_MAX_ENVS copies (either reset
    # noise), compiled from COMPILE_MIN_ENVS up with torch noise, torch operations when asked.
    assert HOST_MAX_ENVS <= COMPILE_MIN_ENVS
    assert CartPole(1).engine == "numpy" and not CartPole(1).compiled
    assert CartPole(HOST_MAX_ENVS - 1).engine == "numpy"
    assert CartPole(HOST_MAX_ENVS - 1, reset_noise="gymnasium").engine == "numpy"
    assert CartPole(HOST_MAX_ENVS).engine in ("compiled", "eager")
    assert CartPole(4, compiled=False).engine == "eager"
    assert CartPole(4, compiled=True).engine == "compiled"
    assert CartPole(COMPILE_MIN_ENVS, reset_noise="gymnasium").engine == "eager"


@pytest.mark.parametrize("params", PARAMS)
def test_the_numpy_step_is_the_spec_bit_for_bit_in_float64(params: cartpole.Params) -> None:
    # With Gymnasium reset noise, copy i of the NumPy engine and a spec CartPole seeded alike
    # start every episode in the same state; every step after that is the spec's, to the bit.
    n, seed = 5, 21
    env = CartPole(n, params, dtype=torch.float64, reset_noise="gymnasium", seed=seed)
    assert env.engine == "numpy"
    rngs = [np.random.default_rng(seed + i) for i in range(n)]
    twins = [cartpole.reset(params, rng)[0] for rng in rngs]
    actions = np.random.default_rng(0).integers(0, 2, size=(300, n))
    ends = 0
    for t, row in enumerate(actions):
        out = env.step(torch.from_numpy(row))
        for i in range(n):
            want = cartpole.step(params, twins[i], int(row[i]))
            got = out.next_observation[i].numpy()
            assert got.tobytes() == want.state.physics().tobytes(), f"step {t}, env {i}"
            assert float(out.reward[i]) == want.reward
            assert (bool(out.terminated[i]), bool(out.truncated[i])) == (
                want.terminated, want.truncated
            )
            twins[i] = want.state
            if want.terminated or want.truncated:
                twins[i] = cartpole.reset(params, rngs[i])[0]
                ends += 1
        physics, steps = env.get_state()
        for i in range(n):
            assert physics[i].numpy().tobytes() == twins[i].physics().tobytes()
            assert int(steps[i]) == twins[i].steps
    assert ends >= n


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("params", PARAMS)
def test_the_numpy_and_eager_steps_give_the_same_episodes(
    dtype: torch.dtype, params: cartpole.Params
) -> None:
    # Same seed, same actions: the same reset states (one grid, bit for bit), flags, rewards and
    # step counts; the states agree to rounding (the eager step folds constants). Started on
    # and near the termination bounds and the time limit.
    n = 8
    numpy_env, eager = (CartPole(n, params, dtype=dtype, seed=3, compiled=c) for c in (None, False))
    assert (numpy_env.engine, eager.engine) == ("numpy", "eager")
    bounds = torch.tensor([[2.4, 0.0, 0.0, 0.0], [-2.39, 1.0, 0.2, -1.0]], dtype=dtype)
    physics = torch.cat([bounds, numpy_env.get_state()[0][2:]])
    steps = torch.tensor([0, 0, 0, 0, 0, 0, 498, 499])
    for env in (numpy_env, eager):
        env.set_state(physics, steps)
    generator = torch.Generator().manual_seed(0)
    ends = 0
    for _ in range(150):
        actions = torch.randint(2, (n,), generator=generator)
        got, want = numpy_env.step(actions), eager.step(actions)
        torch.testing.assert_close(got.next_observation, want.next_observation)
        assert got.next_observation.dtype == dtype and got.reward.dtype == dtype
        assert torch.equal(got.reward, want.reward)
        assert torch.equal(torch.signbit(got.reward), torch.signbit(want.reward))
        assert got.terminated.dtype == torch.bool and got.truncated.dtype == torch.bool
        assert torch.equal(got.terminated, want.terminated)
        assert torch.equal(got.truncated, want.truncated)
        done = got.terminated | got.truncated
        assert torch.equal(numpy_env.observe()[done], eager.observe()[done])
        torch.testing.assert_close(numpy_env.observe(), eager.observe())
        assert torch.equal(numpy_env.get_state()[1], eager.get_state()[1])
        ends += int(done.sum())
    assert ends > n


def test_the_numpy_and_compiled_steps_give_the_same_episodes() -> None:
    n = 6
    numpy_env, compiled = (CartPole(n, seed=8, compiled=c) for c in (None, True))
    generator = torch.Generator().manual_seed(4)
    for _ in range(80):
        actions = torch.randint(2, (n,), generator=generator)
        got, want = numpy_env.step(actions), compiled.step(actions)
        torch.testing.assert_close(got.next_observation, want.next_observation)
        assert torch.equal(got.terminated, want.terminated)
        assert torch.equal(got.truncated, want.truncated)
        torch.testing.assert_close(numpy_env.observe(), compiled.observe())
    assert compiled.compiled and numpy_env.engine == "numpy"


def test_the_numpy_step_hands_out_snapshots_and_follows_set_state() -> None:
    # Observations handed out are never written again; a state set between steps (a new
    # tensor, not the arrays of the last step) is the one stepped from.
    env, twin = CartPole(3, seed=1), CartPole(3, seed=2)
    actions = torch.tensor([0, 1, 1])
    first = env.step(actions)
    observed = env.observe()
    kept = first.next_observation.clone(), observed.clone()
    env.step(actions)
    assert torch.equal(first.next_observation, kept[0]) and torch.equal(observed, kept[1])
    physics, steps = twin.get_state()
    env.set_state(physics, steps)
    assert torch.equal(env.step(actions).next_observation, twin.step(actions).next_observation)
    assert torch.equal(env.get_state()[0], twin.get_state()[0])
    env.load_state_dict(twin.state_dict())
    assert torch.equal(env.step(actions).next_observation, twin.step(actions).next_observation)
    env.reset(seed=5)
    twin.reset(seed=5)
    assert torch.equal(env.step(actions).next_observation, twin.step(actions).next_observation)
    assert torch.equal(env.observe(), twin.observe())


def test_the_numpy_step_leaves_its_inputs_alone() -> None:
    params = cartpole.Params()
    known = cartpole_host.constants(params, np.dtype(np.float64), np.dtype(np.int64))
    physics = np.array([[0.1, 2.5], [0.2, -1.0], [0.03, -0.2], [-0.4, 0.0]])
    steps, actions = np.array([3, 499]), np.array([1, 0])
    grid = np.full((4, 2), -(2**15), dtype=np.int16)
    thresholds = np.array([[params.x_threshold], [params.theta_threshold]])
    before = physics.copy(), steps.copy(), actions.copy(), grid.copy()
    out = cartpole_host.numpy_advance(params, known, thresholds, physics, steps, actions, grid)
    new, reward, terminated, truncated, following, counts = out
    for array, kept in zip((physics, steps, actions, grid), before, strict=True):
        assert np.array_equal(array, kept)
    assert terminated.tolist() == [False, True] and truncated.tolist() == [False, True]
    assert counts.tolist() == [4, 0] and reward.tolist() == [1.0, 1.0]
    assert following[:, 1].tolist() == [-params.reset_bound] * 4
    assert np.array_equal(following[:, 0], new[:, 0])
