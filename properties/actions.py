"""Properties of continuous actions at the trust boundary (`spec.actions`).

Each factory takes the implementation under test and returns a zero-argument Hypothesis test:

    test_clip = clipping_matches_spec(runtime.contract.clip_actions)
    test_check = action_check_agrees_with_reference(runtime.contract.check_box_actions)
    test_session = session_receives_clipped_actions(make_torch_pendulum_session)

Generated boxes have one or two dimensions, a float16, float32 or float64 dtype, and per-entry
bounds that may be infinite or equal; generated actions lie inside, on and far outside them.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from checked_rl.runtime.contract import torch_dtype
from checked_rl.spec.actions import action_violations
from checked_rl.spec.contract import Contract
from checked_rl.spec.envs.base import Box

__all__ = [
    "action_check_agrees_with_reference",
    "box_actions",
    "boxes",
    "clipping_matches_spec",
    "session_receives_clipped_actions",
]

MAX_ROWS = 4
"""Batches of actions have 1 to `MAX_ROWS` rows."""

_DTYPES = (np.float16, np.float32, np.float64)


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    """A small `Box`: shape of one or two sizes 1-3, a float dtype, finite or infinite bounds."""
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    dtype = draw(st.sampled_from(_DTYPES))
    finite = st.floats(-100, 100, width=16).map(lambda x: x + 0.0)
    lows, highs = [], []
    for _ in range(int(np.prod(shape))):
        low, high = sorted((draw(finite), draw(finite)))
        lows.append(-np.inf if draw(st.booleans()) else low)
        highs.append(np.inf if draw(st.booleans()) else high)
    return Box(shape, np.reshape(lows, shape), np.reshape(highs, shape), dtype)


def box_actions(box: Box, rows: int) -> st.SearchStrategy[np.ndarray]:
    """Well-formed actions `[rows, *A]` of `box`: finite, inside, on and beyond its bounds."""
    limit = float(np.finfo(box.dtype).max)
    edges = [float(bound) for bound in (*box.low.ravel(), *box.high.ravel()) if np.isfinite(bound)]
    values = st.one_of(
        st.floats(-limit, limit, width=np.dtype(box.dtype).itemsize * 8),
        st.sampled_from([0.0, -0.0, 2.7, -2.7, *edges]),
    )
    size = rows * int(np.prod(box.shape))
    return st.lists(values, min_size=size, max_size=size).map(
        lambda xs: np.array(xs, dtype=box.dtype).reshape(rows, *box.shape)
    )


def clipping_matches_spec(clip: Callable[[Box, torch.Tensor], torch.Tensor]) -> Callable[[], None]:
    """`clip(box, actions)` is `box.clip` of every row, value for value and in the actions'
    dtype (the sign of a zero is free: NumPy's own float16 and float32 paths differ on it).

    Assumes `boxes()` (shapes of one or two axes of sizes 1-3, float16/32/64, finite or
    infinite bounds) and `box_actions` rows (inside, on and beyond the bounds, up to the dtype's
    largest finite value); CPU tensors. Accepts any clip that returns the spec's values in the
    actions' dtype, whatever its order of operations; rejects one that changes the dtype or
    clips to bounds rounded otherwise.

    Args:
        clip: `clip(box, actions [N, *A]) -> [N, *A]`, such as `runtime.contract.clip_actions`.
    """

    @given(st.data())
    def prop(data: st.DataObject) -> None:
        box = data.draw(boxes())
        actions = data.draw(box_actions(box, data.draw(st.integers(1, MAX_ROWS))))
        got = clip(box, torch.from_numpy(actions.copy()))
        want = np.stack([box.clip(row) for row in actions])
        assert got.dtype == torch.from_numpy(want).dtype, (got.dtype, want.dtype)
        np.testing.assert_array_equal(got.numpy(), want, strict=True)
        assert all(box.contains(row) for row in got.numpy())

    return prop


_FAULTS = ("none", "nan", "inf", "-inf", "dtype", "rows", "entries")


def action_check_agrees_with_reference(check: Callable[..., None]) -> Callable[[], None]:
    """`check(contract, actions, step=...)` raises exactly when `spec.actions.action_violations`
    finds a violation, with an error whose `violations` list is the reference's.

    Generated batches are well formed or carry one fault: a NaN or an infinity in one entry,
    another float dtype, or another shape.

    Assumes a continuous `Contract` over `boxes()` and batches from `box_actions` with at most
    one such fault; CPU tensors. Accepts a check that raises an error carrying the reference's
    `violations` (same wording and order) for every faulty batch and nothing for well-formed
    ones, an action outside its box included (it is recorded as given, not refused).

    Args:
        check: the per-step check, such as `runtime.contract.check_box_actions`.
    """

    @given(st.data())
    def prop(data: st.DataObject) -> None:
        box = data.draw(boxes())
        contract = Contract((1,), None, action_box=box)
        rows = data.draw(st.integers(1, MAX_ROWS))
        actions = data.draw(box_actions(box, rows))
        fault = data.draw(st.sampled_from(_FAULTS))
        if fault in ("nan", "inf", "-inf"):
            index = data.draw(st.integers(0, actions.size - 1))
            actions.reshape(-1)[index] = float(fault)
        elif fault == "dtype":
            other = data.draw(st.sampled_from([d for d in _DTYPES if d != box.dtype]))
            with np.errstate(over="ignore"):  # a float16 copy may overflow: still a dtype fault
                actions = actions.astype(other)
        elif fault == "rows":
            actions = actions.reshape(rows, -1)[:, :1] if box.shape != (1,) else actions[:, 0]
        elif fault == "entries":
            actions = np.concatenate([actions, actions], axis=-1)
        step = data.draw(st.integers(0, 100))
        want = action_violations(contract, actions, step=step)
        try:
            check(contract, torch.from_numpy(actions), step=step)
        except Exception as error:
            got = getattr(error, "violations", None)
            assert got is not None, f"{type(error).__name__} without violations: {error}"
            assert [str(v) for v in got] == [str(v) for v in want], (got, want)
            assert str(error) == str(want[0]) and "\n" not in str(error)
        else:
            assert not want, f"accepted {actions!r}; the reference finds {want}"

    return prop


def session_receives_clipped_actions(
    make: Callable[[], Any], box: Box, steps: int = 3
) -> Callable[[], None]:
    """A session steps its environments with the actions clipped into `box` (the
    environment's own action space) and records the actions as given.

    From one captured state (`state_dict`), stepping with actions `a` and stepping with
    `box.clip(a)` give the same successors, rewards and flags; the transitions record `a` and
    `box.clip(a)` respectively.

    Assumes a session whose `state_dict`/`load_state_dict` restore it exactly and whose
    environments are deterministic given that state; actions from `box_actions` (inside, on
    and beyond the box). Accepts any session kind that clips for the environment and records
    the unclipped action; rejects one that records the clipped action or hands the environment
    the unclipped one.

    Args:
        make: a fresh, reset session that captures its state, with a continuous contract.
        box: the environment's action space (the spec's `action_space(params)`).
        steps: the number of steps compared from each captured state.
    """

    @given(st.data())
    def prop(data: st.DataObject) -> None:
        session = make()
        try:
            zeros = torch.zeros((session.num_envs, *box.shape), dtype=torch_dtype(box.dtype))
            session.step_checked(zeros)
            saved = session.state_dict()
            batches = [data.draw(box_actions(box, session.num_envs)) for _ in range(steps)]
            given_actions = [session.step_checked(torch.from_numpy(a)) for a in batches]
            session.load_state_dict(saved)
            clipped = [np.stack([box.clip(row) for row in a]) for a in batches]
            received = [session.step_checked(torch.from_numpy(a)) for a in clipped]
        finally:
            session.close()
        for a, c, x, y in zip(batches, clipped, given_actions, received, strict=True):
            np.testing.assert_array_equal(x.action.cpu().numpy(), a, strict=True)
            np.testing.assert_array_equal(y.action.cpu().numpy(), c, strict=True)
            for name in ("next_observation", "reward", "terminated", "truncated"):
                assert torch.equal(getattr(x, name), getattr(y, name)), (name, a, c)

    return prop
