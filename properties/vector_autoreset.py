"""A Gymnasium vector environment follows the autoreset mode it declares, copy for copy.

`follows_autoreset_mode(make_vector_env, make_env)` replays seeded random actions through the
vector environment and through `num_envs` single environments from `make_env`, copy `i` reset
with `seed + i` (Gymnasium's convention for `reset(seed=seed)`), and drives the singles as the
declared `metadata["autoreset_mode"]` says a vector environment must:

- `SAME_STEP`: a copy that ends returns its reset observation, the final one in
  `infos["final_obs"][i]` with `infos["_final_obs"][i]` set (and unset for the others);
- `NEXT_STEP`: a copy that ends returns its final observation; at the next step it ignores its
  action and returns the reset observation with reward 0 and both flags False;
- `DISABLED`: a copy that ends returns its final observation and stays ended until the caller
  resets it, here at once with `reset(options={"reset_mask": done})`.

Every observation, reward and flag must be the singles' (exactly, unless `atol` is given). A
vector environment without the metadata, or one that seeds its copies otherwise, fails with the
first copy and step that differ.
"""

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from hypothesis import given
from hypothesis import strategies as st

from checked_rl.properties.strategies.envs import SEEDS

__all__ = ["MAX_VECTOR_STEPS", "follows_autoreset_mode"]

MAX_VECTOR_STEPS = 60
"""The most batched steps one example takes."""


def _host(value: Any) -> np.ndarray:
    """A NumPy copy of `value` (NumPy array, torch tensor or list)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    return np.array(value, copy=True)


def _check(what: str, got: Any, want: Any, atol: float) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    same = got.shape == want.shape and (
        np.array_equal(got, want, equal_nan=True)
        if atol == 0.0
        else np.allclose(got, want, rtol=0.0, atol=atol, equal_nan=True)
    )
    assert same, f"{what}: the vector environment gave {got.tolist()}, the singles {want.tolist()}"


def follows_autoreset_mode(
    make_vector_env: Callable[[], VectorEnv],
    make_env: Callable[[], gymnasium.Env],
    *,
    atol: float = 0.0,
) -> Callable[[], None]:
    """The vector environment equals `num_envs` singles seeded `seed + i`, stepped under its
    declared autoreset mode (see the module docstring).

    Assumes a `Discrete` action space (actions drawn from `0..n-1`), single environments
    deterministic given `reset(seed=...)` and the actions, a vector environment that seeds copy
    `i` with `seed + i` and resets a finished copy by an unseeded reset that goes on with that
    copy's generator, results as NumPy arrays, torch tensors or lists; exact unless `atol`.
    Accepts any vector environment, synchronous, asynchronous or batched on a device, that
    declares its `metadata["autoreset_mode"]` and keeps it; one that seeds its copies another
    way is rejected even if each copy is a correct environment.
    """

    @given(seed=SEEDS, data=st.data())
    def prop(seed: int, data: st.DataObject) -> None:
        vector_env = make_vector_env()
        singles: list[gymnasium.Env] = []
        try:
            mode = vector_env.metadata.get("autoreset_mode")
            assert isinstance(mode, AutoresetMode), (
                f"metadata['autoreset_mode'] must declare a gymnasium.vector.AutoresetMode, "
                f"got {mode!r}"
            )
            n = vector_env.num_envs
            singles = [make_env() for _ in range(n)]
            observation, _ = vector_env.reset(seed=seed)
            for i, single in enumerate(singles):
                want = single.reset(seed=seed + i)[0]
                _check(f"reset(seed={seed}), copy {i} (seeded {seed + i})",
                       _host(observation)[i], want, atol)
            length = data.draw(st.integers(1, MAX_VECTOR_STEPS), label="steps")
            space = singles[0].action_space
            pending = [False] * n
            for step in range(length):
                actions = data.draw(
                    st.lists(st.integers(0, int(space.n) - 1), min_size=n, max_size=n),
                    label=f"actions {step}",
                )
                _compare_step(vector_env, singles, mode, actions, pending, step, atol)
        finally:
            vector_env.close()
            for single in singles:
                single.close()

    return prop


def _compare_step(
    vector_env: VectorEnv,
    singles: list[gymnasium.Env],
    mode: AutoresetMode,
    actions: list[int],
    pending: list[bool],
    step: int,
    atol: float,
) -> None:
    """One batched step against the singles under `mode`; updates `pending` (NEXT_STEP)."""
    observation, reward, terminated, truncated, infos = vector_env.step(np.array(actions))
    observation, reward = _host(observation), _host(reward)
    terminated, truncated = _host(terminated), _host(truncated)
    finals, final_mask = infos.get("final_obs"), infos.get("_final_obs")
    done = np.zeros(len(singles), dtype=bool)
    for i, (single, action) in enumerate(zip(singles, actions, strict=True)):
        where = f"{mode.name} step {step}, copy {i}"
        if mode == AutoresetMode.NEXT_STEP and pending[i]:
            want = (single.reset()[0], 0.0, False, False)
            pending[i] = False
        else:
            next_observation, r, term, trunc, _ = single.step(action)
            want = (next_observation, r, term, trunc)
            done[i] = term or trunc
            if done[i] and mode == AutoresetMode.SAME_STEP:
                has_final = final_mask is not None and bool(final_mask[i])
                assert has_final, f"{where}: the episode ended but infos has no final_obs"
                _check(f"{where}: infos['final_obs']", _host(finals[i]), next_observation, atol)
                want = (single.reset()[0], r, term, trunc)
            pending[i] = bool(done[i]) and mode == AutoresetMode.NEXT_STEP
        if mode == AutoresetMode.SAME_STEP and not done[i] and final_mask is not None:
            assert not final_mask[i], f"{where}: infos['_final_obs'] set but the episode goes on"
        for name, got, expected in zip(
            ("observation", "reward", "terminated", "truncated"),
            (observation[i], reward[i], terminated[i], truncated[i]),
            want,
            strict=True,
        ):
            _check(f"{where}: {name}", got, expected, atol)
    if mode == AutoresetMode.DISABLED and done.any():
        reset, _ = vector_env.reset(options={"reset_mask": done})
        for i in np.flatnonzero(done).tolist():
            _check(f"DISABLED reset after step {step}, copy {i}", _host(reset)[i],
                   singles[i].reset()[0], atol)
