"""GAE as one compiled C loop over time, on the CPU: the fast path of `runtime.returns.gae`.

The loop is the spec's (`spec.returns.gae`), over whole rows of environments: for `t` from
`T - 1` down to 0 and every column `n`,

```
delta = (r[t, n] + gamma * (terminated ? 0 : V(next)[t, n])) - V[t, n]
a[n]  = delta + (terminated or truncated ? 0 : (gamma * lam) * a[n])
```

with the same float operations in the same order as the spec (no fused multiply-adds, no
reassociation: the source is compiled with `-ffp-contract=off` and without fast-math), so its
results equal the spec's bit for bit in float64 and in float32 (where, as in NumPy, `gamma` and
`gamma * lam` are rounded to float32 first). It reads every input once and writes the result
once, in one thread: no parallel region, so nothing waits on a busy core.

The C source below is compiled on first use with the system's C compiler (`cc`, or the one in
`$CC`) into a shared library cached on disk, in `$CHECKED_RL_KERNEL_CACHE`, else
`$XDG_CACHE_HOME/checked-rl/kernels`, else `~/.cache/checked-rl/kernels`, under a name made of a
hash of the source and the compile command; later processes only load it. When no compiler is
found or the build fails, `library()` returns None, `unavailable_reason()` says why, and
`runtime.returns.gae` uses its torch scan (`runtime.returns.scanned_gae`) instead.
`CHECKED_RL_COMPILED_LOOPS=0` switches the compiled loop off.
"""

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "COMPILE_FLAGS",
    "SOURCE",
    "cache_dir",
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

COMPILE_FLAGS = ("-O3", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math")
"""Optimised, position-independent, and no contraction of `a * b + c` into a fused multiply-add
(which would round otherwise than the spec)."""

_FUNCTIONS = {torch.float32: "gae_float32", torch.float64: "gae_float64"}

_lock = threading.Lock()
_loaded: dict[str, object] = {}
"""The loaded library under "library", or why there is none under "reason" (once tried)."""


def cache_dir() -> Path:
    """The folder of compiled libraries (see the module docstring for the variables read)."""
    explicit = os.environ.get("CHECKED_RL_KERNEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "checked-rl" / "kernels"


def _compiler() -> list[str] | None:
    """The C compiler command: `$CC` if set, else `cc`, `gcc` or `clang` on the PATH."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def _build(compiler: list[str]) -> Path:
    """Compile `SOURCE` into the cache (once per source and command) and return the library."""
    command = [*compiler, *COMPILE_FLAGS]
    key = hashlib.sha256("\0".join([SOURCE, *command]).encode()).hexdigest()[:16]
    target = cache_dir() / f"gae_loop_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as folder:
        source = Path(folder) / "gae_loop.c"
        source.write_text(SOURCE)
        built = Path(folder) / target.name
        result = subprocess.run(
            [*command, "-o", str(built), str(source)], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise OSError(f"{command[0]} exited with {result.returncode}: {result.stderr[-500:]}")
        # Atomic: a process compiling the same library at the same time replaces it whole.
        os.replace(built, target)
    return target


def _load() -> None:
    """Build or find the library and load it, or record why not (callers hold `_lock`)."""
    if os.environ.get("CHECKED_RL_COMPILED_LOOPS", "1") == "0":
        _loaded["reason"] = "switched off by CHECKED_RL_COMPILED_LOOPS=0"
        return
    compiler = _compiler()
    if compiler is None:
        _loaded["reason"] = "no C compiler found (set CC, or install cc, gcc or clang)"
        return
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except (OSError, subprocess.SubprocessError) as error:
        _loaded["reason"] = f"the C loop could not be built or loaded: {error}"
        return
    for name in _FUNCTIONS.values():
        function = getattr(lib, name)
        function.restype = None
        function.argtypes = [
            ctypes.c_int64, ctypes.c_int64, *[ctypes.c_void_p] * 5,
            ctypes.c_double, ctypes.c_double, ctypes.c_void_p, ctypes.c_void_p,
        ]
    _loaded["library"] = lib


def library() -> ctypes.CDLL | None:
    """The compiled library, built or loaded on the first call; None where it is unavailable."""
    if not _loaded:
        with _lock:
            if not _loaded:
                _load()
    return _loaded.get("library")  # type: ignore[return-value]


def unavailable_reason() -> str | None:
    """Why the compiled loop is not used (None when it is, or has not been tried yet)."""
    return _loaded.get("reason")  # type: ignore[return-value]


def supports(rewards: Tensor) -> bool:
    """Whether the compiled loop can take a call whose float arguments are like `rewards`."""
    return rewards.device.type == "cpu" and rewards.dtype in _FUNCTIONS


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
