"""Shape checking at the runtime's public boundary.

Axis names used across the package:

- `T`: time (steps of a rollout),
- `N`: environments (the batch of a session),
- `A`: discrete actions, or the dimensions of a continuous action,
- `*obs`: the shape of one observation.

Decorate a public function with `@typechecked` to have its jaxtyping annotations checked by
beartype on every call. A mismatch raises a jaxtyping `TypeCheckError` that names the argument
and the expected and received shapes. The checks cost tens of microseconds per call, so they
belong at API boundaries, not in inner loops; `JAXTYPING_DISABLE=1` switches them off.
"""

from collections.abc import Callable
from typing import TypeVar

from beartype import beartype
from jaxtyping import TypeCheckError, jaxtyped

__all__ = ["TypeCheckError", "typechecked"]

F = TypeVar("F", bound=Callable[..., object])


def typechecked(fn: F) -> F:
    """Check `fn`'s jaxtyping annotations with beartype on every call."""
    return jaxtyped(typechecker=beartype)(fn)
