"""The compiled GAE loop (`runtime.gae_loop`), the torch scan beside it, and the choice."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given

from checked_rl.properties.returns import gae_matches_spec, lambda_returns_match_spec
from checked_rl.properties.strategies.rollouts import RolloutArrays, discounts, rollouts
from checked_rl.runtime import compiled, gae_loop, returns
from checked_rl.runtime.contract import screen
from checked_rl.spec import returns as spec_returns

needs_loop = pytest.mark.skipif(
    gae_loop.library() is None, reason=f"compiled loop unavailable: {gae_loop.unavailable_reason()}"
)

test_scanned_gae_matches_spec_float64 = gae_matches_spec(returns.scanned_gae)
test_scanned_gae_matches_spec_float32 = gae_matches_spec(returns.scanned_gae, dtype=torch.float32)
test_scanned_gae_matches_spec_general = gae_matches_spec(returns.scanned_gae, consistent=False)
test_gae_matches_spec_general_float32 = gae_matches_spec(
    returns.gae, dtype=torch.float32, consistent=False
)
test_lambda_returns_match_spec_float32 = lambda_returns_match_spec(
    returns.lambda_returns, dtype=torch.float32
)

FIELDS = ("rewards", "values", "next_values", "terminated", "truncated")


def spec_gae(arrays: dict[str, np.ndarray], gamma: float, lam: float) -> np.ndarray:
    """`spec.returns.gae` column by column, float64."""
    columns = [
        spec_returns.gae(**{k: a[:, n] for k, a in arrays.items()}, gamma=gamma, lam=lam)
        for n in range(arrays["rewards"].shape[1])
    ]
    return np.stack(columns, axis=1)


def random_arrays(n_steps: int, n_envs: int, seed: int, done: float = 0.05) -> dict:
    rng = np.random.default_rng(seed)
    shape = (n_steps, n_envs)
    floats = {k: rng.standard_normal(shape) * 10 for k in FIELDS[:3]}
    flags = {k: rng.random(shape) < done for k in FIELDS[3:]}
    return floats | flags


@needs_loop
@given(arrays=rollouts(), gamma=discounts(), lam=discounts())
def test_compiled_loop_equals_the_spec_bit_for_bit_in_float64(
    arrays: RolloutArrays, gamma: float, lam: float
) -> None:
    # The same float64 operations in the same order as the spec: no tolerance.
    fields = {k: getattr(arrays, k) for k in FIELDS}
    got = returns.gae(**{k: torch.from_numpy(a) for k, a in fields.items()}, gamma=gamma, lam=lam)
    np.testing.assert_array_equal(got.numpy(), spec_gae(fields, gamma, lam))


@needs_loop
@pytest.mark.parametrize(("n_steps", "n_envs"), [(1, 1), (3, 5), (50, 37), (9, 1024)])
def test_compiled_loop_equals_the_spec_on_wide_rows(n_steps: int, n_envs: int) -> None:
    # Widths that fill the vector lanes and leave remainders (the rollouts strategy is narrow).
    arrays = random_arrays(n_steps, n_envs, seed=n_envs)
    got = returns.gae(**{k: torch.from_numpy(a) for k, a in arrays.items()}, gamma=0.9, lam=0.8)
    np.testing.assert_array_equal(got.numpy(), spec_gae(arrays, 0.9, 0.8))


@needs_loop
def test_compiled_loop_float32_agrees_with_the_torch_scan() -> None:
    arrays = random_arrays(300, 70, seed=1)
    tensors = {k: torch.from_numpy(a).float() if a.dtype != bool else torch.from_numpy(a)
               for k, a in arrays.items()}
    fast = returns.gae(**tensors, gamma=0.99, lam=0.95)
    plain = returns.scanned_gae(**tensors, gamma=0.99, lam=0.95)
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-4)


@needs_loop
def test_compiled_loop_ignores_special_values_masked_by_termination() -> None:
    # A terminated step's next value is never read, so a NaN or infinity there changes nothing,
    # as in the spec; a non-terminated infinity propagates as in the spec.
    arrays = random_arrays(40, 9, seed=2, done=0.2)
    special = arrays["next_values"].copy()
    cycle = np.resize([np.nan, np.inf, -np.inf], special.shape)
    special[arrays["terminated"]] = cycle[arrays["terminated"]]
    arrays["next_values"] = special
    got = returns.gae(**{k: torch.from_numpy(a) for k, a in arrays.items()}, gamma=0.9, lam=0.9)
    want = spec_gae(arrays, 0.9, 0.9)
    assert np.isfinite(want).all()
    np.testing.assert_array_equal(got.numpy(), want)
    arrays["next_values"][5, 3] = np.inf
    arrays["terminated"][5, 3] = False
    got = returns.gae(**{k: torch.from_numpy(a) for k, a in arrays.items()}, gamma=0.9, lam=0.9)
    np.testing.assert_array_equal(got.numpy(), spec_gae(arrays, 0.9, 0.9))


@needs_loop
def test_compiled_loop_takes_strided_arguments() -> None:
    # Transposed and sliced tensors are made contiguous before the loop reads them.
    arrays = random_arrays(12, 6, seed=3)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(a.T)).T for k, a in arrays.items()}
    assert not tensors["rewards"].is_contiguous()
    got = returns.gae(**tensors, gamma=0.95, lam=0.9)
    np.testing.assert_array_equal(got.numpy(), spec_gae(arrays, 0.95, 0.9))
    every_other = {k: torch.from_numpy(a)[::2] for k, a in arrays.items()}
    got = returns.gae(**every_other, gamma=0.95, lam=0.9)
    halved = {k: a[::2] for k, a in arrays.items()}
    np.testing.assert_array_equal(got.numpy(), spec_gae(halved, 0.95, 0.9))


def test_arguments_that_require_a_gradient_are_refused_as_by_the_torch_path() -> None:
    tensors = {k: torch.from_numpy(a) for k, a in random_arrays(4, 2, seed=5).items()}
    tensors["values"].requires_grad_(True)
    with pytest.raises(RuntimeError, match="automatic differentiation"):
        returns.gae(**tensors, gamma=0.9, lam=0.5)
    with pytest.raises(RuntimeError, match="automatic differentiation"):
        returns.scanned_gae(**tensors, gamma=0.9, lam=0.5)


def test_empty_rollouts() -> None:
    for shape in ((0, 3), (4, 0)):
        tensors = {k: torch.zeros(shape, dtype=torch.bool if k in FIELDS[3:] else torch.float64)
                   for k in FIELDS}
        assert returns.gae(**tensors, gamma=0.9, lam=0.9).shape == shape
        assert returns.scanned_gae(**tensors, gamma=0.9, lam=0.9).shape == shape


def test_scanned_gae_rejects_bad_arguments_by_its_own_name() -> None:
    tensors = {k: torch.from_numpy(a) for k, a in random_arrays(4, 2, seed=4).items()}
    with pytest.raises(ValueError, match="scanned_gae: lam must lie in"):
        returns.scanned_gae(**tensors, gamma=0.9, lam=1.5)
    tensors["values"] = tensors["values"].float()
    with pytest.raises(ValueError, match="scanned_gae: values must have dtype"):
        returns.scanned_gae(**tensors, gamma=0.9, lam=0.5)


PROBE = """
import json, torch
from checked_rl.runtime import compiled, gae_loop, returns
from checked_rl.runtime.contract import screen
ones = torch.ones(3, 2, dtype=torch.float64)
flags = torch.zeros(3, 2, dtype=torch.bool)
a = returns.gae(rewards=ones, values=ones, next_values=ones, terminated=flags, truncated=flags,
                gamma=0.5, lam=1.0)
print(json.dumps({"loaded": gae_loop.library() is not None,
                  "reason": gae_loop.unavailable_reason(), "first": a[0, 0].item()}))
"""


def probe(tmp_path: Path, **env: str) -> dict:
    """Run GAE in a fresh process with `env` set and its kernel cache in `tmp_path`."""
    environment = os.environ | {"CHECKED_RL_KERNEL_CACHE": str(tmp_path)} | env
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True,
        timeout=300, check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


# A_2 = 1 + 0.5 - 1 = 0.5, A_1 = 0.5 + 0.5 * 0.5, A_0 = 0.5 + 0.5 * 0.75.
FIRST = 0.875


def test_switched_off_loop_falls_back_to_the_torch_scan(tmp_path: Path) -> None:
    answer = probe(tmp_path, CHECKED_RL_COMPILED_LOOPS="0")
    assert answer == {"loaded": False, "reason": "switched off by CHECKED_RL_COMPILED_LOOPS=0",
                      "first": FIRST}
    assert not list(tmp_path.iterdir())


def test_a_failing_compiler_falls_back_to_the_torch_scan(tmp_path: Path) -> None:
    answer = probe(tmp_path, CC="false")
    assert not answer["loaded"] and answer["first"] == FIRST
    assert "gae_loop could not be built" in answer["reason"]


def test_no_compiler_falls_back_to_the_torch_scan(tmp_path: Path) -> None:
    answer = probe(tmp_path, CC="", PATH=str(tmp_path / "empty"))
    assert answer == {"loaded": False, "first": FIRST,
                      "reason": "no C compiler found (set CC, or install cc, gcc or clang)"}


@needs_loop
def test_the_library_is_built_once_then_loaded_from_the_cache(tmp_path: Path) -> None:
    assert probe(tmp_path) == {"loaded": True, "reason": None, "first": FIRST}
    (library,) = tmp_path.glob("gae_loop_*.so")
    built = library.stat().st_mtime_ns
    assert probe(tmp_path) == {"loaded": True, "reason": None, "first": FIRST}
    assert library.stat().st_mtime_ns == built
    assert list(tmp_path.iterdir()) == [library]
    assert compiled.cache_dir() != tmp_path


@pytest.mark.skipif(shutil.which("cc") is None, reason="no cc on the PATH")
def test_with_a_compiler_the_compiled_loops_are_used() -> None:
    # Otherwise every test marked needs_loop would be skipped, and the fast paths untested.
    assert gae_loop.library() is not None, gae_loop.unavailable_reason()
    assert screen.library() is not None
