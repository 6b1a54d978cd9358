"""A one-pass screen of a CPU batch: proves every value rule at once, or hands over.

`check_transition` asks this screen first. It is one compiled C function
(`runtime.compiled`) that reads each field of the batch once and answers whether EVERY value
obeys the contract's value rules, exactly as `runtime.contract.extremes.values_valid` decides
them: each observation entry (of both observation fields) within its closed float64 interval of
`extremes.contract_limits` (NaN fails every comparison, infinities fail a finiteness rule), the
rewards within theirs, discrete actions in `0 .. n_actions - 1`, continuous ones finite, and no
environment both terminated and truncated under `exclusive_flags`.

It only ever says "valid" or "don't know": on False (a violation, a layout or dtype it does not
take, an accelerator, or no compiled library) the caller runs the NumPy extremes check and,
where that fails, the reference report, so a refused batch is refused with the same report as
without the screen. It takes float32/float64 observations and rewards, int64 or
float32/float64 actions and bool flags, in any strides, and observations of the contract's
shape and dtype; everything else is handed over.
"""

import ctypes
import functools

import numpy as np
import torch
from torch import Tensor

from checked_rl.runtime import compiled
from checked_rl.runtime.contract.extremes import contract_limits
from checked_rl.runtime.contract.records import TORCH_TO_NUMPY, Transition
from checked_rl.spec import contract as spec_contract

__all__ = ["SOURCE", "inward", "library", "passes", "unavailable_reason"]

SOURCE = r"""
#include <stdint.h>

/* With GCC on x86-64, the column loops also come in an AVX2 version, chosen when the library
   is loaded on a processor that has it (twice the lanes, and 64-bit integer comparisons). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define WIDE __attribute__((target_clones("avx2", "default")))
#else
#define WIDE
#endif

/* 1 when some of the n entries x[0], x[s], x[2 s], ... lies outside the closed interval
   [lo, hi] or is NaN, compared in the entries' own type (the caller rounds the float64
   limits inward to it, which decides every comparison as float64 would). The loop over a
   contiguous column has no branch and vectorises. */
#define OUTSIDE(NAME, REAL)                                                               \
WIDE static int NAME##_column(const REAL *x, int64_t n, REAL lo, REAL hi) {               \
    int bad = 0;                                                                          \
    for (int64_t i = 0; i < n; i++) {                                                     \
        const REAL v = x[i];                                                              \
        bad |= (v < lo) | (v > hi) | (v != v);                                            \
    }                                                                                     \
    return bad;                                                                           \
}                                                                                         \
static int NAME##_strided(const REAL *x, int64_t n, int64_t s, REAL lo, REAL hi) {        \
    int bad = 0;                                                                          \
    for (int64_t i = 0; i < n; i++) {                                                     \
        const REAL v = x[i * s];                                                          \
        bad |= (v < lo) | (v > hi) | (v != v);                                            \
    }                                                                                     \
    return bad;                                                                           \
}                                                                                         \
/* The same for every column j of the [n, size] view x (element strides sn, sj), against   \
   [low[j], high[j]]. */                                                                  \
static int NAME(const void *data, int64_t n, int64_t size, int64_t sn, int64_t sj,        \
                const void *low_data, const void *high_data) {                            \
    const REAL *x = (const REAL *)data;                                                   \
    const REAL *low = (const REAL *)low_data, *high = (const REAL *)high_data;            \
    int bad = 0;                                                                          \
    for (int64_t j = 0; j < size; j++) {                                                  \
        bad |= sn == 1 ? NAME##_column(x + j * sj, n, low[j], high[j])                    \
                       : NAME##_strided(x + j * sj, n, sn, low[j], high[j]);              \
    }                                                                                     \
    return bad;                                                                           \
}

OUTSIDE(outside_float32, float)
OUTSIDE(outside_float64, double)
OUTSIDE(outside_int64, int64_t)

/* dtype codes: 1 float32, 2 float64, 3 int64 */
static int outside(int64_t code, int64_t data, int64_t n, int64_t size, int64_t sn,
                   int64_t sj, int64_t low, int64_t high) {
    const void *x = (const void *)data, *lo = (const void *)low, *hi = (const void *)high;
    switch (code) {
        case 1: return outside_float32(x, n, size, sn, sj, lo, hi);
        case 2: return outside_float64(x, n, size, sn, sj, lo, hi);
        case 3: return outside_int64(x, n, size, sn, sj, lo, hi);
        default: return 1;
    }
}

/* 1 when the batch obeys every value rule. `i` holds, in order: n; the observation code (0:
   no rule), size, pointers to the low and high limits, then pointer, sn, sj of each
   observation field; the reward code (0: no rule), pointer, stride, pointers to its low and
   high limit; the action code, pointer, count per environment (contiguous), pointers to its
   low and high limit; the exclusive rule, then pointer and stride of terminated and of
   truncated. */
int screen(const int64_t *i) {
    const int64_t n = i[0];
    if (i[1] && (outside(i[1], i[5], n, i[2], i[6], i[7], i[3], i[4])
                 || outside(i[1], i[8], n, i[2], i[9], i[10], i[3], i[4])))
        return 0;
    if (i[11] && outside(i[11], i[12], n, 1, i[13], 1, i[14], i[15]))
        return 0;
    if (outside(i[16], i[17], n * i[18], 1, 1, 1, i[19], i[20]))
        return 0;
    if (i[21]) {
        const uint8_t *term = (const uint8_t *)i[22], *trunc = (const uint8_t *)i[24];
        int both = 0;
        for (int64_t k = 0; k < n; k++) both |= term[k * i[23]] & trunc[k * i[25]];
        if (both) return 0;
    }
    return 1;
}
"""
"""The C source of the screen."""

_CODES = {torch.float32: 1, torch.float64: 2, torch.int64: 3}
_FLOAT_CODES = (1, 2)
_NUMPY = {1: np.float32, 2: np.float64, 3: np.int64}

_FLOAT64_MAX = float(np.finfo(np.float64).max)


def _declare(library: ctypes.CDLL) -> None:
    library.screen.restype = ctypes.c_int
    library.screen.argtypes = [ctypes.POINTER(ctypes.c_int64)]


_LIBRARY = compiled.Library("contract_screen", SOURCE, _declare)


def library() -> ctypes.CDLL | None:
    """The compiled screen, built or loaded on the first call; None where it is unavailable."""
    return _LIBRARY.get()


def unavailable_reason() -> str | None:
    """Why the screen is not used (None when it is, or has not been tried yet)."""
    return _LIBRARY.reason()


def inward(low: np.ndarray, high: np.ndarray, code: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 limits rounded inward to the type of `code`: the smallest value of the type
    `>= low` and the largest `<= high`, so that for every value `x` of that type,
    `low <= x <= high` in float64 exactly when `low' <= x <= high'` in the type."""
    dtype = _NUMPY[code]
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if code == 3:  # integers: the ceiling and floor, clipped to int64
        bound = float(2**62)
        return (
            np.clip(np.ceil(low), -bound, bound).astype(np.int64),
            np.clip(np.floor(high), -bound, bound).astype(np.int64),
        )
    with np.errstate(over="ignore"):
        near_low, near_high = low.astype(dtype), high.astype(dtype)
    near_low = np.where(near_low < low, np.nextafter(near_low, dtype(np.inf)), near_low)
    near_high = np.where(near_high > high, np.nextafter(near_high, dtype(-np.inf)), near_high)
    return near_low.astype(dtype), near_high.astype(dtype)


@functools.lru_cache(maxsize=64)
def _limits(contract: spec_contract.Contract, observation: int, reward: int, action: int):
    """The contract's limits in the types of a batch's fields (codes), cached: for each part,
    the low and high arrays (kept alive here) and their addresses, which the screen reads."""
    limits = contract_limits(contract)
    parts = []
    if limits.observation is not None:
        parts.append(inward(*limits.observation, observation))
    if limits.reward is not None:
        parts.append(inward(*(np.array([value]) for value in limits.reward), reward))
    if contract.action_box is not None:
        interval = (-_FLOAT64_MAX, _FLOAT64_MAX)  # continuous actions: finite
    else:
        interval = (0.0, float(contract.n_actions - 1))
    parts.append(inward(*(np.array([value]) for value in interval), action))
    return [(low, high, low.ctypes.data, high.ctypes.data) for low, high in parts]


def _code(tensor: Tensor, floating: bool) -> int | None:
    """The screen's code of a field's dtype, or None where it does not take it."""
    code = _CODES.get(tensor.dtype)
    return code if code is not None and (code in _FLOAT_CODES) == floating else None


def _observation_words(transition: Transition, size: int) -> list[int]:
    """Pointer and element strides of each observation field seen as `[N, size]`
    (`RuntimeError` when no view can flatten one)."""
    words = []
    for field in (transition.observation, transition.next_observation):
        view = field if field.ndim == 2 else field.view(len(field), size)
        words += [view.data_ptr(), *view.stride()]
    return words


def passes(contract: spec_contract.Contract, transition: Transition) -> bool:
    """True when the screen proves that every value of the CPU batch obeys `contract`'s value
    rules; False when it finds a violation or cannot decide (see the module docstring)."""
    lib = library()
    action = transition.action
    codes = (
        _code(transition.observation, True),
        _code(transition.reward, True),
        _code(action, contract.action_box is not None),
    )
    observation = transition.observation
    if (
        lib is None
        or transition.device.type != "cpu"
        or None in codes
        or not action.is_contiguous()
        or tuple(observation.shape[1:]) != contract.observation_shape
        or TORCH_TO_NUMPY.get(observation.dtype) != contract.observation_dtype
    ):
        return False
    limits = contract_limits(contract)
    bounds = iter(_limits(contract, *codes))
    words = [transition.num_envs]
    if limits.observation is not None:
        _, _, low, high = next(bounds)
        try:
            fields = _observation_words(transition, limits.size)
        except RuntimeError:
            return False
        words += [codes[0], limits.size, low, high, *fields]
    else:
        words += [0] * 10
    if limits.reward is not None:
        _, _, low, high = next(bounds)
        reward = transition.reward
        words += [codes[1], reward.data_ptr(), reward.stride(0), low, high]
    else:
        words += [0] * 5
    _, _, low, high = next(bounds)
    per_env = action.numel() // transition.num_envs if transition.num_envs else 0
    words += [codes[2], action.data_ptr(), per_env, low, high]
    terminated, truncated = transition.terminated, transition.truncated
    words += [
        int(bool(contract.exclusive_flags)),
        terminated.data_ptr(),
        terminated.stride(0),
        truncated.data_ptr(),
        truncated.stride(0),
    ]
    return bool(lib.screen((ctypes.c_int64 * len(words))(*words)))
