"""Small C functions compiled on first use, cached on disk and loaded with `ctypes`.

The runtime's one-pass CPU loops (`runtime.gae_loop`, `runtime.contract.screen`) are plain C,
compiled with the system's C compiler (`$CC`, else `cc`, `gcc` or `clang` on the PATH) into a
shared library in `cache_dir()`: `$CHECKED_RL_KERNEL_CACHE`, else
`$XDG_CACHE_HOME/checked-rl/kernels`, else `~/.cache/checked-rl/kernels`, under a name made of a
hash of the source and the compile command, so that later processes only load it (about a
millisecond; compiling takes a fraction of a second to a few seconds). Every library has a
plain fallback: when no compiler is found, the build fails or `CHECKED_RL_COMPILED_LOOPS=0`,
`Library.get()` returns None and `Library.reason()` says why.
"""

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["COMPILE_FLAGS", "Library", "cache_dir"]

COMPILE_FLAGS = ("-O3", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math")
"""Optimised, position-independent, no fast-math and no contraction of `a * b + c` into a fused
multiply-add, so that every float operation rounds as written (as NumPy's do)."""


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


def _build(name: str, source: str, compiler: list[str]) -> Path:
    """Compile `source` into the cache (once per source and command); return the library."""
    command = [*compiler, *COMPILE_FLAGS]
    key = hashlib.sha256("\0".join([source, *command]).encode()).hexdigest()[:16]
    target = cache_dir() / f"{name}_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as folder:
        source_file = Path(folder) / f"{name}.c"
        source_file.write_text(source)
        built = Path(folder) / target.name
        result = subprocess.run(
            [*command, "-o", str(built), str(source_file)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise OSError(f"{command[0]} exited with {result.returncode}: {result.stderr[-500:]}")
        # Atomic: a process compiling the same library at the same time replaces it whole.
        os.replace(built, target)
    return target


class Library:
    """One C source, compiled and loaded on the first `get()` (thread-safe), or its failure.

    `declare` sets the `argtypes` and `restype` of the loaded library's functions.
    """

    def __init__(self, name: str, source: str, declare: Callable[[ctypes.CDLL], None]) -> None:
        self.name, self.source, self.declare = name, source, declare
        self._lock = threading.Lock()
        self._outcome: tuple[ctypes.CDLL | None, str | None] | None = None

    def get(self) -> ctypes.CDLL | None:
        """The loaded library, built or found in the cache on the first call; None without."""
        if self._outcome is None:
            with self._lock:
                if self._outcome is None:
                    self._outcome = self._load()
        return self._outcome[0]

    def reason(self) -> str | None:
        """Why the library is not used (None when it is, or has not been tried yet)."""
        return None if self._outcome is None else self._outcome[1]

    def _load(self) -> tuple[ctypes.CDLL | None, str | None]:
        if os.environ.get("CHECKED_RL_COMPILED_LOOPS", "1") == "0":
            return None, "switched off by CHECKED_RL_COMPILED_LOOPS=0"
        compiler = _compiler()
        if compiler is None:
            return None, "no C compiler found (set CC, or install cc, gcc or clang)"
        try:
            library = ctypes.CDLL(str(_build(self.name, self.source, compiler)))
        except (OSError, subprocess.SubprocessError) as error:
            return None, f"the C library {self.name} could not be built or loaded: {error}"
        self.declare(library)
        return library, None
