"""Properties of running normalisation (`spec.normalization`): batched implementations agree
with the spec over drawn streams of batches and done flags, and the laws of the spec hold
(merging the moments of two batches gives those of their concatenation, the order of the
batches does not matter, normalised values lie within the clip, a frozen normaliser is a
fixed affine map).

What the properties assume of their inputs: streams of 1 to `MAX_BATCHES` batches of 1 to
`MAX_ROWS` rows, observation shapes from `OBSERVATION_SHAPES`, entries float32 numbers in
`[-VALUE_BOUND, VALUE_BOUND]`; reward streams `[T, N]` (`T <= MAX_STEPS`, `N <= MAX_ENVS`)
with any pattern of `terminated` and `truncated` flags, a discount in `[0, 1]`, clip values
from `CLIPS` and epsilons from `EPSILONS` (large ones too, so that where `epsilon` enters the
formula shows). What they accept: any order of the sums within a batch (float64 results
within `MOMENTS_RTOL`, float32 outputs within `FLOAT32_RTOL` of the size of their terms, plus
`FLOAT32_FLOOR` where a result is below float32's normal range).
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checked_rl.properties.tolerances import FLOAT32_RTOL, MOMENTS_RTOL, assert_close
from checked_rl.spec import normalization as spec

__all__ = [
    "CLIPS",
    "EPSILONS",
    "FLOAT32_FLOOR",
    "MAX_BATCHES",
    "MAX_ENVS",
    "MAX_ROWS",
    "MAX_STEPS",
    "OBSERVATION_SHAPES",
    "VALUE_BOUND",
    "batch_streams",
    "frozen_normalizer_is_a_fixed_affine_map",
    "merge_is_the_moments_of_the_concatenation",
    "normalized_values_lie_within_the_clip",
    "observation_normalizer_matches_spec",
    "reward_scaler_matches_spec",
    "reward_streams",
    "running_moments_match_spec",
    "update_is_order_invariant",
]

MAX_BATCHES = 6
"""Batches per drawn stream."""
MAX_ROWS = 5
"""Rows (environments) per batch."""
MAX_STEPS = 12
"""Steps `T` of a drawn reward stream."""
MAX_ENVS = 4
"""Environments `N` of a drawn reward stream."""
OBSERVATION_SHAPES = ((), (1,), (3,), (2, 2))
"""Sample shapes drawn: a scalar (the reward scaler's returns), vectors and a matrix."""
VALUE_BOUND = 100.0
"""Entries lie in `[-VALUE_BOUND, VALUE_BOUND]`."""
CLIPS = (spec.CLIP, 1.0, 1e6)
"""Clip values drawn: the default, a tight one and one that never binds."""
EPSILONS = (spec.EPSILON, 1e-2, 1.0)
"""Epsilons drawn: the default and large ones, where `sqrt(var + eps)` and `sqrt(var) + eps`
differ visibly."""


def _values() -> st.SearchStrategy[float]:
    return st.floats(-VALUE_BOUND, VALUE_BOUND, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def batch_streams(draw: st.DrawFn) -> list[np.ndarray]:
    """1 to `MAX_BATCHES` float32 batches `[B, *S]` of one shape `S` from `OBSERVATION_SHAPES`;
    sometimes every row of a batch is the same (zero variance)."""
    shape = draw(st.sampled_from(OBSERVATION_SHAPES))
    batches = []
    for _ in range(draw(st.integers(1, MAX_BATCHES))):
        rows = draw(st.integers(1, MAX_ROWS))
        if draw(st.booleans()):
            row = draw(hnp.arrays(np.float32, shape, elements=_values()))
            batches.append(np.broadcast_to(row, (rows, *shape)).copy())
        else:
            batches.append(draw(hnp.arrays(np.float32, (rows, *shape), elements=_values())))
    return batches


@st.composite
def reward_streams(draw: st.DrawFn) -> dict[str, Any]:
    """Rewards `[T, N]` (float32), `terminated` and `truncated` `[T, N]`, `gamma`, `clip`,
    `epsilon`."""
    steps, envs = draw(st.integers(1, MAX_STEPS)), draw(st.integers(1, MAX_ENVS))
    flags = hnp.arrays(np.bool_, (steps, envs), elements=st.booleans())
    return {
        "rewards": draw(hnp.arrays(np.float32, (steps, envs), elements=_values())),
        "terminated": draw(flags),
        "truncated": draw(flags),
        "gamma": draw(st.one_of(st.sampled_from([0.0, 0.9, 0.99, 1.0]), st.floats(0.0, 1.0))),
        "clip": draw(st.sampled_from(CLIPS)),
        "epsilon": draw(st.sampled_from(EPSILONS)),
    }


FLOAT32_FLOOR = float(np.finfo(np.float32).tiny) / FLOAT32_RTOL
"""Added to the scale of float32 comparisons: a result below float32's smallest normal number
has fewer digits (or underflows to 0)."""


def _z_scale(x: np.ndarray, moments: spec.Moments, epsilon: float) -> np.ndarray:
    """The size of the terms of `(x - mean) / sqrt(var + eps)` and of their rounding, plus
    `FLOAT32_FLOOR`."""
    return (np.abs(x) + np.abs(moments.mean)) / np.sqrt(moments.var + epsilon) + FLOAT32_FLOOR


def running_moments_match_spec(
    make: Callable[[tuple[int, ...]], Any], *, device: str = "cpu"
) -> Callable[[], None]:
    """`make(shape)` returns running moments with `update(batch)` (a tensor `[B, *S]` on
    `device`) and `state_dict()` giving `mean`, `var` and `count`; after every batch of a
    stream they equal `spec.normalization.update`'s from `initial_moments`.

    Assumes `batch_streams`. Accepts any order of the sums, within `MOMENTS_RTOL` of the size
    of the terms; the count must be exact.
    """

    @given(batch_streams())
    def check(batches: list[np.ndarray]) -> None:
        shape = batches[0].shape[1:]
        implementation = make(shape)
        moments = spec.initial_moments(shape)
        for i, batch in enumerate(batches):
            implementation.update(torch.as_tensor(batch, device=device))
            moments = spec.update(moments, batch)
            state = implementation.state_dict()
            assert float(state["count"]) == moments.count, (i, state["count"], moments.count)
            scale = np.max(np.abs(batches[0])) + np.max(np.abs(batch))
            assert_close(np.asarray(state["mean"].cpu()), moments.mean, scale=scale,
                         rtol=MOMENTS_RTOL, what=f"mean after batch {i}")
            assert_close(np.asarray(state["var"].cpu()), moments.var, scale=1.0 + scale**2,
                         rtol=MOMENTS_RTOL, what=f"var after batch {i}")

    return check


def observation_normalizer_matches_spec(
    make: Callable[[tuple[int, ...], float, float], Any], *, device: str = "cpu"
) -> Callable[[], None]:
    """`make(shape, clip, epsilon)` returns a normaliser with `update(batch)` and
    `normalize(batch)`; for each batch of a stream, `update` then `normalize` gives the spec's
    `normalize(batch, moments)` with the moments of every batch so far.

    Assumes `batch_streams`, clips from `CLIPS`, epsilons from `EPSILONS`. Accepts float32 or
    float64 outputs, within `FLOAT32_RTOL` of the size of the terms.
    """

    @given(batch_streams(), st.sampled_from(CLIPS), st.sampled_from(EPSILONS))
    def check(batches: list[np.ndarray], clip: float, epsilon: float) -> None:
        shape = batches[0].shape[1:]
        implementation = make(shape, clip, epsilon)
        moments = spec.initial_moments(shape)
        for i, batch in enumerate(batches):
            tensor = torch.as_tensor(batch, device=device)
            implementation.update(tensor)
            moments = spec.update(moments, batch)
            got = implementation.normalize(tensor).double().cpu().numpy()
            want = spec.normalize(batch, moments, clip, epsilon)
            assert_close(got, want, scale=_z_scale(batch, moments, epsilon), rtol=FLOAT32_RTOL,
                         what=f"normalised batch {i}")

    return check


def reward_scaler_matches_spec(
    make: Callable[[int, float, float, float], Any], *, device: str = "cpu"
) -> Callable[[], None]:
    """`make(num_envs, gamma, clip, epsilon)` returns a scaler called once per step as
    `scaler(rewards [N], terminated [N], truncated [N])`; its outputs over a stream equal
    `spec.normalization.scale_rewards`'s (the return restarts where either flag is set).

    Assumes `reward_streams`. Accepts float32 or float64 outputs within `FLOAT32_RTOL`.
    """

    @given(reward_streams())
    def check(stream: dict[str, Any]) -> None:
        rewards = stream["rewards"]
        implementation = make(rewards.shape[1], stream["gamma"], stream["clip"],
                              stream["epsilon"])
        got = np.stack([
            implementation(
                torch.as_tensor(rewards[t], device=device),
                torch.as_tensor(stream["terminated"][t], device=device),
                torch.as_tensor(stream["truncated"][t], device=device),
            ).double().cpu().numpy()
            for t in range(rewards.shape[0])
        ])
        want, _ = spec.scale_rewards(
            spec.initial_reward_scaler(rewards.shape[1]), rewards, stream["terminated"],
            stream["truncated"], stream["gamma"], stream["clip"], stream["epsilon"],
        )
        assert_close(got, want, scale=FLOAT32_FLOOR, rtol=FLOAT32_RTOL, what="scaled rewards")

    return check


def merge_is_the_moments_of_the_concatenation(
    merge: Callable[[spec.Moments, spec.Moments], spec.Moments] = spec.merge,
    batch_moments: Callable[[np.ndarray], spec.Moments] = spec.batch_moments,
) -> Callable[[], None]:
    """Chan et al.'s law: `merge(batch_moments(x), batch_moments(y))` equals
    `batch_moments(concatenate(x, y))`, count included.

    Assumes two batches of `batch_streams` of one shape. Accepts NumPy implementations of the
    two functions whose results agree within `MOMENTS_RTOL` of the size of the terms.
    """

    @given(batch_streams().filter(lambda batches: len(batches) >= 2))
    def check(batches: list[np.ndarray]) -> None:
        x, y = batches[0].astype(np.float64), batches[1].astype(np.float64)
        merged = merge(batch_moments(x), batch_moments(y))
        whole = batch_moments(np.concatenate([x, y]))
        scale = max(np.max(np.abs(x)), np.max(np.abs(y)))
        assert merged.count == whole.count, (merged.count, whole.count)
        assert_close(merged.mean, whole.mean, scale=scale, rtol=MOMENTS_RTOL, what="mean")
        assert_close(merged.var, whole.var, scale=scale**2, rtol=MOMENTS_RTOL, what="var")

    return check


def update_is_order_invariant(
    update: Callable[[spec.Moments, np.ndarray], spec.Moments] = spec.update,
) -> Callable[[], None]:
    """Updating the prior with a stream of batches in any order gives the same moments.

    Assumes `batch_streams` and a permutation of it. Accepts a NumPy `update(moments, batch)`
    whose results agree within `MOMENTS_RTOL` of the size of the terms (the count too: the
    prior's `1e-4` makes it a float whose sum depends on the order).
    """

    @given(batch_streams(), st.randoms(use_true_random=False))
    def check(batches: list[np.ndarray], random: Any) -> None:
        shape = batches[0].shape[1:]
        shuffled = list(batches)
        random.shuffle(shuffled)
        first = second = spec.initial_moments(shape)
        for batch, other in zip(batches, shuffled, strict=True):
            first, second = update(first, batch), update(second, other)
        scale = max(float(np.max(np.abs(batch))) for batch in batches)
        assert abs(first.count - second.count) <= MOMENTS_RTOL * first.count, "count"
        assert_close(first.mean, second.mean, scale=scale, rtol=MOMENTS_RTOL, what="mean")
        assert_close(first.var, second.var, scale=1.0 + scale**2, rtol=MOMENTS_RTOL,
                     what="var")

    return check


def normalized_values_lie_within_the_clip(
    normalize: Callable[..., np.ndarray] = spec.normalize,
) -> Callable[[], None]:
    """`normalize(x, moments, clip, epsilon)` lies in `[-clip, clip]` and equals the z-score
    `(x - mean) / sqrt(var + epsilon)` wherever that lies within the clip.

    Assumes `batch_streams` (the moments are those of the stream, from the prior), clips from
    `CLIPS`, epsilons from `EPSILONS`. Accepts a NumPy implementation within `MOMENTS_RTOL`.
    """

    @given(batch_streams(), st.sampled_from(CLIPS), st.sampled_from(EPSILONS))
    def check(batches: list[np.ndarray], clip: float, epsilon: float) -> None:
        moments = spec.initial_moments(batches[0].shape[1:])
        for batch in batches:
            moments = spec.update(moments, batch)
        x = np.concatenate(batches).astype(np.float64)
        got = np.asarray(normalize(x, moments, clip, epsilon))
        assert np.all(np.abs(got) <= clip), f"|normalised| > clip {clip}: {got}"
        z = (x - moments.mean) / np.sqrt(moments.var + epsilon)
        inside = np.abs(z) < clip
        assert_close(got[inside], z[inside], scale=_z_scale(x, moments, epsilon)[inside],
                     rtol=MOMENTS_RTOL, what="unclipped values")

    return check


def frozen_normalizer_is_a_fixed_affine_map(
    make: Callable[[tuple[int, ...], list[Any]], Any], *, device: str = "cpu"
) -> Callable[[], None]:
    """`make(shape, warmup)` returns a normaliser that has seen the `warmup` batches and is then
    frozen; its `normalize` is the spec's map under the warm-up moments, and stays the same
    map, bit for bit, whatever batches `update` receives afterwards.

    Assumes two streams of `batch_streams` of one shape (warm-up, then later batches). Accepts
    float32 or float64 outputs within `FLOAT32_RTOL`; nothing may change after freezing.
    """

    @given(batch_streams().filter(lambda batches: len(batches) >= 2))
    def check(batches: list[np.ndarray]) -> None:
        half = len(batches) // 2
        warmup, later = batches[:half], batches[half:]
        shape = batches[0].shape[1:]
        frozen = make(shape, [torch.as_tensor(b, device=device) for b in warmup])
        moments = spec.initial_moments(shape)
        for batch in warmup:
            moments = spec.update(moments, batch)
        probe = torch.as_tensor(np.concatenate(batches), device=device)
        before = frozen.normalize(probe).cpu().numpy()
        for batch in later:
            frozen.update(torch.as_tensor(batch, device=device))
        after = frozen.normalize(probe).cpu().numpy()
        np.testing.assert_array_equal(after, before, "a frozen normaliser changed its map")
        x = probe.double().cpu().numpy()
        assert_close(before.astype(np.float64), spec.normalize(x, moments),
                     scale=_z_scale(x, moments, spec.EPSILON), rtol=FLOAT32_RTOL,
                     what="frozen map")

    return check
