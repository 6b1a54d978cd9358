"""GAE as one compiled C loop over time, on the CPU: the fast path of `runtime.returns.gae`.

The loop is the spec's (`spec.returns.gae`), over whole rows of environments: for `t` from
`T - 1` down to 0 and every column `n`,

```
delta = (r[t, n] + gamma * (terminated ? 0 : V(next)[t, n])) - V[t, n]
a[n]  = delta + (terminated or truncated ? 0 : (gamma * lam) * a[n])
```

with the same float operations in the same order as the spec (no fused multiply-adds, no
reassociation: `runtime.compiled.COMPILE_FLAGS`), so in float64 its results equal the spec's bit
for bit. In float32 every operation rounds to float32 (`gamma` and `gamma * lam` too), where the
spec computes in float64: they agree within the float32 tolerance of `properties.returns`. It
reads every input once and writes the result once, in one thread: no parallel region, so
nothing waits on a busy core.

The C source below is compiled on first use and cached on disk by `runtime.compiled`. When no
compiler is found or the build fails (or `CHECKED_RL_COMPILED_LOOPS=0`), `library()` returns
None, `unavailable_reason()` says why, and `runtime.returns.gae` uses its torch scan
(`runtime.returns.scanned_gae`) instead.
"""

import ctypes

import torch
from torch import Tensor

from checked_rl.runtime import compiled

__all__ = [
    "SOURCE",
    "gae_",
    "library",
    "supports",
    "unavailable_reason",
]

SOURCE = r"""
#include <stdint.h>
#include <string.h>

/* A masked float: `x` where the flag `cut` (a bool byte, 0 or 1) is 0, else +0.0: the bits of
   x and'ed with ~0 or 0, so that the loop has no branch and vectorises. A NaN or infinity
   masked out is ignored, as the spec's `np.where` ignores it. */
#define MASKED(REAL, BITS, out, x, cut)                                                   \
    do {                                                                                  \
        BITS bits_;                                                                       \
        memcpy(&bits_, &(x), sizeof bits_);                                               \
        bits_ &= (BITS)((cut) & 1) - 1;                                                    \
        memcpy(&(out), &bits_, sizeof bits_);                                             \
    } while (0)

#define GAE_LOOP(NAME, REAL, BITS)                                                        \
void NAME(int64_t n_steps, int64_t n_envs, const REAL *restrict rewards,                  \
          const REAL *restrict values, const REAL *restrict next_values,                  \
          const uint8_t *restrict terminated, const uint8_t *restrict truncated,          \
          double gamma, double lam, REAL *restrict out, REAL *restrict running) {         \
    const REAL g = (REAL)gamma;                                                           \
    const REAL gl = (REAL)(gamma * lam);                                                  \
    for (int64_t n = 0; n < n_envs; n++) running[n] = 0;                                  \
    for (int64_t t = n_steps - 1; t >= 0; t--) {                                          \
        const int64_t row = t * n_envs;                                                   \
        const REAL *restrict r = rewards + row, *restrict v = values + row;               \
        const REAL *restrict v_next = next_values + row;                                  \
        const uint8_t *restrict term = terminated + row, *restrict trunc = truncated + row;\
        REAL *restrict a = out + row;                                                     \
        for (int64_t n = 0; n < n_envs; n++) {                                            \
            REAL kept, carry;                                                             \
            const REAL follow = gl * running[n];                                          \
            MASKED(REAL, BITS, kept, v_next[n], term[n]);                                 \
            MASKED(REAL, BITS, carry, follow, term[n] | trunc[n]);                        \
            running[n] = a[n] = ((r[n] + g * kept) - v[n]) + carry;                       \
        }                                                                                 \
    }                                                                                     \
}

GAE_LOOP(gae_float32, float, uint32_t)
GAE_LOOP(gae_float64, double, uint64_t)
"""
"""The C source of the loop, one function per float dtype."""

_FUNCTIONS = {torch.float32: "gae_float32", torch.float64: "gae_float64"}


def _declare(library: ctypes.CDLL) -> None:
    for name in _FUNCTIONS.values():
        function = getattr(library, name)
        function.restype = None
        function.argtypes = [
            ctypes.c_int64, ctypes.c_int64, *[ctypes.c_void_p] * 5,
            ctypes.c_double, ctypes.c_double, ctypes.c_void_p, ctypes.c_void_p,
        ]


_LIBRARY = compiled.Library("gae_loop", SOURCE, _declare)


def library() -> ctypes.CDLL | None:
    """The compiled library, built or loaded on the first call; None where it is unavailable."""
    return _LIBRARY.get()


def unavailable_reason() -> str | None:
    """Why the compiled loop is not used (None when it is, or has not been tried yet)."""
    return _LIBRARY.reason()


def supports(rewards: Tensor, *others: Tensor) -> bool:
    """Whether the compiled loop can take a call whose float arguments are like `rewards`:
    on the CPU, float32 or float64, and none of them requiring a gradient (the loop does not
    record one; the torch path refuses such arguments with torch's own error)."""
    return (
        rewards.device.type == "cpu"
        and rewards.dtype in _FUNCTIONS
        and not any(t.requires_grad for t in (rewards, *others))
    )


def gae_(
    out: Tensor,
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """Write GAE into `out` by the compiled loop; all arguments contiguous CPU `[T, N]`
    tensors already checked by the caller (floats of one dtype, flags bool)."""
    lib = library()
    if lib is None:
        raise RuntimeError(f"gae_loop: compiled loop unavailable: {unavailable_reason()}")
    n_steps, n_envs = rewards.shape
    running = torch.empty(n_envs, dtype=rewards.dtype)
    inputs = (rewards, values, next_values, terminated, truncated)
    getattr(lib, _FUNCTIONS[rewards.dtype])(
        n_steps, n_envs, *(t.data_ptr() for t in inputs), gamma, lam, out.data_ptr(),
        running.data_ptr(),
    )
    return out
