"""Batched torch CartPole and GridWorld against their spec twins and against Gymnasium."""

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings

from checked_rl.properties import cartpole as cartpole_properties
from checked_rl.properties import gridworld as gridworld_properties
from checked_rl.properties.strategies.envs import SEEDS
from checked_rl.runtime.envs import cartpole as runtime_cartpole
from checked_rl.runtime.envs import cartpole_step
from checked_rl.runtime.envs.cartpole import CartPole
from checked_rl.runtime.envs.gridworld import GridWorld
from checked_rl.runtime.shapes import TypeCheckError
from checked_rl.spec.envs import cartpole, gridworld

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def make_cartpole(num_envs: int, params: cartpole.Params, dtype: torch.dtype) -> CartPole:
    return CartPole(num_envs, params, dtype=dtype, seed=0)


def make_gridworld(num_envs: int, params: gridworld.Params, dtype: torch.dtype) -> GridWorld:
    return GridWorld(num_envs, params, dtype=dtype)


test_cartpole_step_matches_spec_float64 = cartpole_properties.step_matches_spec(make_cartpole)
test_cartpole_step_matches_spec_float32 = cartpole_properties.step_matches_spec(
    make_cartpole, dtype=torch.float32
)
test_cartpole_trajectory_matches_spec = cartpole_properties.trajectory_matches_spec(make_cartpole)
test_gridworld_step_matches_spec_float32 = gridworld_properties.step_matches_spec(make_gridworld)
test_gridworld_step_matches_spec_float64 = gridworld_properties.step_matches_spec(
    make_gridworld, dtype=torch.float64
)


class HeavierEarthCartPole(CartPole):
    """A deliberately wrong CartPole (g = 9.81) that the properties must reject."""

    def __init__(self, num_envs: int, params: cartpole.Params, **kwargs) -> None:
        super().__init__(num_envs, dataclasses.replace(params, gravity=9.81), **kwargs)


def test_step_property_rejects_wrong_physics() -> None:
    prop = cartpole_properties.step_matches_spec(
        lambda n, p, d: HeavierEarthCartPole(n, p, dtype=d, seed=0)
    )
    with pytest.raises(AssertionError, match="next_observation"):
        settings(max_examples=20, database=None, phases=[Phase.generate])(prop)()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("seed", "compiled"), [(0, False), (2024, False), (0, True)])
def test_gymnasium_reset_noise_reproduces_gymnasium_sessions(
    dtype: torch.dtype, seed: int, compiled: bool
) -> None:
    """Torch, spec and Gymnasium envs seeded s + i, fed the same actions, give the same steps
    (the compiled step too: its reset states are replaced by Gymnasium's draws)."""
    n, horizon = 4, 400
    env = CartPole(n, dtype=dtype, reset_noise="gymnasium", seed=seed, compiled=compiled)
    gyms = [gym.make("CartPole-v1") for _ in range(n)]
    params = cartpole.Params()
    spec_rngs = [np.random.default_rng(seed + i) for i in range(n)]
    twins = []
    for i, g in enumerate(gyms):
        obs, _ = g.reset(seed=seed + i)
        state, spec_obs = cartpole.reset(params, spec_rngs[i])
        assert obs.tobytes() == spec_obs.tobytes()
        twins.append(state)
    _assert_same_start(env, twins, dtype)
    rng = np.random.default_rng(seed)
    episodes = 0
    for t in range(horizon):
        actions = rng.integers(0, 2, size=n)
        out = env.step(torch.from_numpy(actions))
        for i, g in enumerate(gyms):
            obs, reward, terminated, truncated, _ = g.step(int(actions[i]))
            spec_out = cartpole.step(params, twins[i], int(actions[i]))
            assert spec_out.observation.tobytes() == obs.tobytes()
            where = f"env {i}, step {t}"
            np.testing.assert_allclose(
                out.next_observation[i].double().numpy(),
                spec_out.state.physics(),
                rtol=cartpole_properties.TOLERANCES[dtype] * 100,
                atol=cartpole_properties.TOLERANCES[dtype] * 100,
                err_msg=where,
            )
            assert float(out.reward[i]) == reward, where
            assert bool(out.terminated[i]) == terminated, where
            assert bool(out.truncated[i]) == truncated, where
            twins[i] = spec_out.state
            if terminated or truncated:
                episodes += 1
                obs, _ = g.reset()
                twins[i], spec_obs = cartpole.reset(params, spec_rngs[i])
                assert spec_obs.tobytes() == obs.tobytes(), f"reset after {where}"
        _assert_same_start(env, twins, dtype, only_fresh=True)
    assert episodes >= n, "random actions end several episodes in 400 steps"
    assert env.compiled == compiled


def _assert_same_start(
    env: CartPole, twins: list[cartpole.State], dtype: torch.dtype, only_fresh: bool = False
) -> None:
    """Copies whose episode just began hold their twin's reset state: exactly in float64."""
    physics, steps = env.get_state()
    for i, twin in enumerate(twins):
        if only_fresh and twin.steps != 0:
            continue
        want = torch.tensor(twin.physics(), dtype=dtype)
        assert torch.equal(physics[i], want), f"env {i}: {physics[i]} != {want}"
        assert int(steps[i]) == 0


def test_gymnasium_reset_noise_matches_gymnasium_after_auto_reset() -> None:
    """The draw after a done comes from the same generator Gymnasium would use."""
    seed = 7
    env = CartPole(2, dtype=torch.float64, reset_noise="gymnasium", seed=seed)
    physics, _ = env.get_state()
    env.set_state(physics, torch.tensor([499, 0]))
    env.step(torch.tensor([0, 1]))
    g = gym.make("CartPole-v1")
    g.reset(seed=seed)
    g.step(0)
    g.reset()
    expected = g.unwrapped.state
    assert torch.equal(env.get_state()[0][0], torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("device", DEVICES)
@given(seed=SEEDS)
@settings(max_examples=10)
def test_torch_reset_is_seeded_and_bounded(device: str, seed: int) -> None:
    a = CartPole(16, device=device, seed=seed)
    b = CartPole(16, device=device)
    assert torch.equal(a.observe(), b.reset(seed=seed))
    assert not torch.equal(b.reset(seed=seed), b.reset())
    assert bool(torch.all(a.observe().abs() < 0.05))
    assert a.observe().device.type == device and a.observe().shape == (16, 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_reset_noise_is_uniform_on_its_grid(dtype: torch.dtype) -> None:
    """Every coordinate: mean 0 and half negative (within 5 standard errors), on the grid."""
    n, bound = 20_000, cartpole.Params().reset_bound
    states = CartPole(n, dtype=dtype, seed=11).observe().double()
    spacing = bound / 2**15
    assert bool(torch.all((states >= -bound) & (states < bound)))
    grid_tol = 1e-2 if dtype == torch.float32 else 1e-6  # float32 rounds k * spacing
    assert torch.allclose(states / spacing, torch.round(states / spacing), atol=grid_tol, rtol=0)
    mean_se = (2 * bound / 12**0.5) / n**0.5
    assert bool(torch.all(states.mean(dim=0).abs() < 5 * mean_se)), states.mean(dim=0)
    negative = (states < 0).double().mean(dim=0)
    assert bool(torch.all((negative - 0.5).abs() < 5 * 0.5 / n**0.5)), negative
    quarter = (states.abs() > bound / 2).double().mean(dim=0)
    assert bool(torch.all((quarter - 0.5).abs() < 5 * 0.5 / n**0.5)), quarter


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_protocol_attributes(device: str, dtype: torch.dtype) -> None:
    env = CartPole(3, device=device, dtype=dtype, seed=0)
    space = gym.make("CartPole-v1").observation_space
    assert (env.num_envs, env.observation_shape, env.n_actions) == (3, (4,), 2)
    assert env.device.type == device and env.dtype == dtype
    np.testing.assert_array_equal(env.observation_high.cpu().numpy(), space.high)
    np.testing.assert_array_equal(env.observation_low.cpu().numpy(), space.low)
    out = env.step(torch.ones(3, dtype=torch.int64, device=device))
    assert out.next_observation.dtype == out.reward.dtype == dtype
    assert out.terminated.dtype == out.truncated.dtype == torch.bool
    assert out.next_observation.shape == (3, 4) and out.reward.shape == (3,)


def test_truncation_at_500_resets_the_copy() -> None:
    env = CartPole(3, seed=1)
    physics, _ = env.get_state()
    env.set_state(physics, torch.tensor([498, 499, 0]))
    out = env.step(torch.zeros(3, dtype=torch.int64))
    assert out.truncated.tolist() == [False, True, False]
    assert env.get_state()[1].tolist() == [499, 0, 1]
    assert torch.equal(env.observe()[0], out.next_observation[0])
    assert not torch.equal(env.observe()[1], out.next_observation[1])


def test_observations_handed_out_are_snapshots() -> None:
    env = CartPole(4, seed=3)
    first = env.observe().clone()
    kept = env.observe()
    out = env.step(torch.ones(4, dtype=torch.int64))
    kept_next = out.next_observation.clone()
    for _ in range(30):
        env.step(torch.ones(4, dtype=torch.int64))
    assert torch.equal(kept, first) and torch.equal(out.next_observation, kept_next)


def test_sutton_barto_rewards_and_no_time_limit() -> None:
    params = cartpole.Params(sutton_barto_reward=True, max_episode_steps=None)
    env = CartPole(2, params, dtype=torch.float64, seed=0)
    env.set_state(
        torch.tensor([[2.39, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64),
        torch.tensor([10_000, 10_000]),
    )
    out = env.step(torch.ones(2, dtype=torch.int64))
    assert out.terminated.tolist() == [True, False] and out.truncated.tolist() == [False, False]
    assert out.reward.tolist() == [-1.0, 0.0]
    assert str(out.reward[1].item()) == "0.0"


def test_bad_actions_and_arguments_are_named() -> None:
    env = CartPole(2, seed=0)
    with pytest.raises(ValueError, match=r"expected actions of shape \(2,\), dtype torch.int64"):
        env.step(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"got shape \(2,\), dtype torch.int32"):
        env.step(torch.zeros(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="reset_noise must be one of"):
        CartPole(2, reset_noise="numpy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_envs must be at least 1"):
        CartPole(0)
    with pytest.raises(ValueError, match="dtype must be"):
        CartPole(1, dtype=torch.float16)
    with pytest.raises(TypeCheckError):
        env.set_state(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="expected physics for 2 copies"):
        env.set_state(torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64))


@pytest.mark.parametrize("device", DEVICES)
def test_gridworld_episode_and_reset(device: str) -> None:
    params = gridworld.Params(width=3, height=2, start=(0, 0), goal=(1, 2), max_episode_steps=10)
    env = GridWorld(2, params, device=device)
    right, down = torch.tensor([3, 3], device=device), torch.tensor([1, 2], device=device)
    env.step(right)
    env.step(right)
    out = env.step(down)
    assert out.terminated.tolist() == [True, False] and out.reward.tolist() == [0.0, -1.0]
    assert env.get_state()[0].tolist() == [[0, 0], [0, 1]]
    assert env.get_state()[1].tolist() == [0, 3]
    assert out.next_observation[0].argmax().item() == 5 and env.observe()[0].argmax().item() == 0
    assert env.reset(seed=5).argmax(dim=1).tolist() == [0, 0]


def test_gridworld_errors_are_named() -> None:
    env = GridWorld(2, gridworld.Params(observation="coordinates"))
    assert env.observation_shape == (2,) and env.observation_high.tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="every cell must lie in the 4 x 4 grid"):
        env.set_state(torch.tensor([[0, 0], [4, 0]]), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"expected actions of shape \(2,\)"):
        env.step(torch.zeros(2, 1, dtype=torch.int64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_special_values_terminate_like_the_spec(dtype: torch.dtype) -> None:
    """NaN never terminates, infinity does, whichever of x and theta holds it."""
    nan, inf = float("nan"), float("inf")
    cases = [
        (nan, 0.0, 0.3, 0.0),
        (nan, 0.0, 0.0, 0.0),
        (inf, 0.0, 0.0, 0.0),
        (0.0, nan, 0.0, 0.0),
        (0.0, 0.0, nan, 0.0),
        (-inf, 0.0, nan, 0.0),
    ]
    params = cartpole.Params()
    env = CartPole(len(cases), dtype=dtype, seed=0)
    env.set_state(torch.tensor(cases, dtype=dtype), torch.zeros(len(cases), dtype=torch.int64))
    out = env.step(torch.zeros(len(cases), dtype=torch.int64))
    with np.errstate(invalid="ignore"):
        expected = [cartpole.step(params, cartpole.State(*case), 0).terminated for case in cases]
    assert out.terminated.tolist() == expected == [True, False, True, False, False, True]
    physics, _ = env.get_state()
    assert bool(torch.isnan(physics[1]).any()) and bool(torch.all(physics[0].abs() < 0.05))


def test_compiled_step_matches_the_eager_step() -> None:
    # The TorchInductor-compiled step that large CPU batches take by default, forced on at a
    # small size (one compilation): same seed and actions, the same episodes as the eager step,
    # from reset states and from states set on and near the termination bounds. Fused loops may
    # contract a multiply and an add, so entries agree to rounding, as whole trajectories do.
    n = 8
    dtype = torch.float64
    compiled, eager = (CartPole(n, dtype=dtype, seed=3, compiled=c) for c in (True, False))
    bounds = torch.tensor([[2.4, 0.0, 0.0, 0.0], [-2.39, 1.0, 0.2, -1.0]], dtype=dtype)
    physics = torch.cat([bounds, compiled.get_state()[0][2:]])
    steps = torch.tensor([0, 0, 0, 0, 0, 0, 498, 499])
    for env in (compiled, eager):
        env.set_state(physics, steps)
    generator = torch.Generator().manual_seed(0)
    done_seen = 0
    for _ in range(120):
        actions = torch.randint(2, (n,), generator=generator)
        got, want = compiled.step(actions), eager.step(actions)
        torch.testing.assert_close(
            got.next_observation, want.next_observation, rtol=1e-9, atol=1e-12
        )
        torch.testing.assert_close(got.reward, want.reward, rtol=0, atol=0)
        assert torch.equal(got.terminated, want.terminated)
        assert torch.equal(got.truncated, want.truncated)
        torch.testing.assert_close(compiled.observe(), eager.observe(), rtol=1e-9, atol=1e-12)
        done_seen += int((got.terminated | got.truncated).sum())
    assert compiled.compiled, "the compiled step fell back to eager"
    assert done_seen > n, "the episodes should have ended and reset several times"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_get_state_returns_copies(dtype: torch.dtype) -> None:
    env = CartPole(3, dtype=dtype, seed=0)
    physics, steps = env.get_state()
    physics += 1.0
    steps += 7
    physics_now, steps_now = env.get_state()
    assert torch.equal(steps_now, torch.zeros(3, dtype=torch.int64))
    assert not torch.equal(physics_now, physics)


# The compiled step: a failure to compile falls back to eager steps; an error in a step surfaces


def test_a_compile_failure_warns_and_steps_eagerly(monkeypatch) -> None:
    from torch._inductor.exc import InductorError, InvalidCxxCompiler

    def no_compiler(*args, **kwargs):
        raise InductorError(InvalidCxxCompiler(), None)

    monkeypatch.setattr(torch._inductor, "compile", no_compiler)
    params = cartpole.Params(tau=0.03)  # not compiled before: `fused_advance` caches by params
    compiled, eager = (CartPole(4, params, seed=5, compiled=c) for c in (True, False))
    actions = torch.tensor([0, 1, 1, 0])
    with pytest.warns(RuntimeWarning, match="compiling the step failed .InductorError: Invalid"):
        step = compiled.step(actions)
    assert not compiled.compiled
    assert torch.equal(step.next_observation, eager.step(actions).next_observation)


def test_an_error_inside_the_compiled_step_surfaces(monkeypatch) -> None:
    # A real failure of compiled code at run time: the kernel compiled for 8 copies asserts
    # the sizes of its inputs and is handed 4. It must not turn into a warning and a fallback.
    compile_for = cartpole_step.fused_advance

    def compiled_for_eight(params, dtype, num_envs, device, threads):
        return compile_for(params, dtype, 8, device, threads)

    monkeypatch.setattr(cartpole_step, "fused_advance", compiled_for_eight)
    env = CartPole(4, dtype=torch.float64, seed=0, compiled=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(AssertionError, match="expected size 4==8"):
            env.step(torch.zeros(4, dtype=torch.int64))
    assert env.compiled


def test_an_error_while_compiling_that_is_not_a_compile_failure_surfaces(monkeypatch) -> None:
    def broken_trace(function):
        raise TypeError("a bug in the traced step")

    monkeypatch.setattr(cartpole_step, "make_fx", broken_trace)
    env = CartPole(4, cartpole.Params(tau=0.031), seed=0, compiled=True)  # a new cache key
    with pytest.raises(TypeError, match="a bug in the traced step"):
        env.step(torch.zeros(4, dtype=torch.int64))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_and_eager_steps_agree_with_gymnasium_reset_noise(monkeypatch, dtype) -> None:
    # The compiled step with Gymnasium reset noise: it runs (the kernel is called), and gives
    # the eager step's episodes, Gymnasium's reset draws included, through many auto-resets.
    calls = []
    compile_for = cartpole_step.fused_advance

    def counted(*args):
        fused = compile_for(*args)
        return lambda *inputs: calls.append(1) or fused(*inputs)

    monkeypatch.setattr(cartpole_step, "fused_advance", counted)
    n, seed = 6, 11
    compiled, eager = (
        CartPole(n, dtype=dtype, reset_noise="gymnasium", seed=seed, compiled=c)
        for c in (True, False)
    )
    generator = torch.Generator().manual_seed(1)
    resets = 0
    for _ in range(150):
        actions = torch.randint(2, (n,), generator=generator)
        got, want = compiled.step(actions), eager.step(actions)
        torch.testing.assert_close(got.next_observation, want.next_observation)
        assert torch.equal(got.terminated, want.terminated)
        assert torch.equal(got.truncated, want.truncated)
        assert torch.equal(compiled.get_state()[1], eager.get_state()[1])
        # Where a copy was reset, both hold the same Gymnasium draw, exactly.
        done = got.terminated | got.truncated
        assert torch.equal(compiled.observe()[done], eager.observe()[done])
        torch.testing.assert_close(compiled.observe(), eager.observe())
        resets += int(done.sum())
    assert len(calls) == 150 and compiled.compiled
    assert resets > n, "the episodes should have ended and reset several times"


def test_threads_must_be_a_positive_int() -> None:
    for threads in (0, -1, 1.0, True):
        with pytest.raises(ValueError, match="threads must be a positive int"):
            CartPole(2, threads=threads)


def test_a_two_thread_compiled_step_matches_the_eager_step() -> None:
    # `threads=2` compiles a kernel with a parallel region over the copies; it must give the
    # one-thread kernel's and the eager step's results.
    n = 64
    options = ((True, 2), (True, 1), (False, 1))
    envs = [CartPole(n, seed=4, compiled=c, threads=t) for c, t in options]
    generator = torch.Generator().manual_seed(2)
    for _ in range(60):
        actions = torch.randint(2, (n,), generator=generator)
        steps = [env.step(actions) for env in envs]
        for other in steps[1:]:
            torch.testing.assert_close(steps[0].next_observation, other.next_observation)
            assert torch.equal(steps[0].terminated, other.terminated)
        torch.testing.assert_close(envs[0].observe(), envs[2].observe())
    assert all(env.compiled for env in envs[:2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_sliced_eager_step_matches_the_compiled_step(dtype: torch.dtype) -> None:
    # Above `EAGER_SLICE_ENVS` copies the eager CPU step runs slice by slice (never threaded);
    # the joined slices must be the compiled whole-batch step, reset states included.
    n = cartpole_step.EAGER_SLICE_ENVS * 2 + 5
    compiled, eager = (CartPole(n, dtype=dtype, seed=9, compiled=c) for c in (True, False))
    generator = torch.Generator().manual_seed(3)
    ends = 0
    for _ in range(40):
        actions = torch.randint(2, (n,), generator=generator)
        got, want = compiled.step(actions), eager.step(actions)
        torch.testing.assert_close(got.next_observation, want.next_observation)
        assert torch.equal(got.reward, want.reward)
        assert torch.equal(got.terminated, want.terminated)
        assert torch.equal(got.truncated, want.truncated)
        torch.testing.assert_close(compiled.observe(), eager.observe())
        assert torch.equal(compiled.get_state()[1], eager.get_state()[1])
        ends += int(got.terminated.sum())
    assert ends > 0


def test_which_cartpoles_compile_by_default() -> None:
    # Deciding costs nothing (compiling waits for the first step): CPU, torch reset noise, from
    # COMPILE_MIN_ENVS copies up; Gymnasium noise and smaller batches step eagerly unless asked.
    threshold = runtime_cartpole.COMPILE_MIN_ENVS
    assert CartPole(threshold).compiled
    assert not CartPole(threshold - 1).compiled
    assert not CartPole(threshold, reset_noise="gymnasium").compiled
    assert CartPole(threshold, reset_noise="gymnasium", compiled=True).compiled
    assert CartPole(threshold, threads=3).threads == 3
