"""The rules for the values a Python environment hands over, one environment at a time.

A Gymnasium environment returns `(observation, info)` from `reset` and
`(observation, reward, terminated, truncated, info)` from `step`, as arbitrary Python objects.
Before they can become a batch (and be checked by `contract.violations`), each must be:

    a reset result      a tuple of 2, a step result a tuple of 5;
    an observation      an array of the contract's shape and dtype, in either byte order (a
                        big-endian `>f4` holds float32 values; it is converted, not refused);
    a reward            a real scalar: a Python `int`, `float` or `bool`, a NumPy bool, integer
                        or floating scalar, or a 0-d array of one; never a string, a complex
                        number or an array with entries (Python's `float()` would parse "1.5");
    terminated, truncated   a `bool` or `numpy.bool_` (or a 0-d bool array), as Gymnasium's
                        passive environment checker requires.

Each rule returns the value in the form a batch needs and a `Violation`, exactly one of them
not None. The in-process Gymnasium session and the bridge's servers apply these same functions,
so an environment gets the same verdict and message wherever it runs. Pure NumPy: a bridge
server imports this module without PyTorch.
"""

from typing import Any

import numpy as np

from checked_rl.spec.contract import Violation

__all__ = [
    "RESULT_KIND",
    "flag_value",
    "observation_value",
    "result_value",
    "reward_value",
]

RESULT_KIND = "result"
"""The `Violation.kind` of a reset or step result that is not the tuple Gymnasium defines."""

_RESULTS = {
    "reset": (2, "(observation, info)"),
    "step": (5, "(observation, reward, terminated, truncated, info)"),
}


def _type_text(value: Any) -> str:
    """What `value` is, for a message: `str`, `ndarray of shape (2,)`, `float64 0-d array`."""
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape}" if value.ndim else f"{value.dtype} 0-d array"
    return type(value).__name__


def result_value(
    result: Any, call: str, *, env: int, step: int | None
) -> tuple[tuple[Any, ...] | None, Violation | None]:
    """A reset or step `result` as its tuple, or the violation of one of another form.

    >>> result_value((1, 2, 3, 4), "step", env=0, step=5)[1].message
    'contract violation: step result[env 0, step 5] = tuple of 4 is not (observation, reward, terminated, truncated, info)'
    """  # noqa: E501
    size, form = _RESULTS[call]
    if isinstance(result, tuple) and len(result) == size:
        return result, None
    found = f"tuple of {len(result)}" if isinstance(result, tuple) else _type_text(result)
    violation = Violation(RESULT_KIND, f"{call} result", env, step, None, found, f"is not {form}")
    return None, violation


def observation_value(
    value: Any,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    *,
    field: str,
    env: int,
    step: int | None,
) -> tuple[np.ndarray | None, Violation | None]:
    """One environment's observation as a native-byte-order array of `shape` and `dtype`.

    The shape is checked before the dtype; a value that is no array at all (a ragged list, an
    object NumPy cannot convert) is a dtype violation naming its type.

    >>> observation_value(np.zeros(2, ">f4"), (2,), np.dtype("float32"), field="observation",
    ...                   env=0, step=None)[0].dtype
    dtype('float32')
    >>> str(observation_value(np.zeros(3), (2,), np.dtype("float32"), field="observation",
    ...                       env=1, step=4)[1])
    'contract violation: observation[env 1, step 4] has shape (3,), expected (2,)'
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        found = _type_text(value)
        return None, Violation("dtype", field, env, step, None, found, str(np.dtype(dtype)))
    if array.shape != tuple(shape):
        return None, Violation("shape", field, env, step, None, array.shape, str(tuple(shape)))
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype != dtype:
        return None, Violation("dtype", field, env, step, None, array.dtype, str(np.dtype(dtype)))
    return array, None


def reward_value(value: Any, *, env: int, step: int | None) -> tuple[float, Violation | None]:
    """One environment's reward as a float, or the violation of a value that is not a real scalar.

    >>> reward_value(np.float32(0.5), env=0, step=0)
    (0.5, None)
    >>> str(reward_value("1.5", env=2, step=7)[1])
    'contract violation: reward[env 2, step 7] has dtype str, expected a real number'
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        scalar = value.dtype.kind in "biuf"
    else:
        scalar = isinstance(value, int | float | np.integer | np.floating | np.bool_)
    if scalar:
        try:
            return float(value), None
        except OverflowError:
            return np.inf, Violation(
                "finite", "reward", env, step, None, "an int beyond float64", "is not finite"
            )
    if isinstance(value, np.ndarray) and value.ndim:
        violation = Violation("shape", "reward", env, step, None, value.shape, "(), a real number")
    else:
        violation = Violation(
            "dtype", "reward", env, step, None, _type_text(value), "a real number"
        )
    return np.nan, violation


def flag_value(
    value: Any, name: str, *, env: int, step: int | None
) -> tuple[bool, Violation | None]:
    """One environment's `terminated` or `truncated` (`name`) as a bool, or its violation.

    >>> flag_value(np.True_, "terminated", env=0, step=0)
    (True, None)
    >>> str(flag_value(1, "truncated", env=0, step=3)[1])
    'contract violation: truncated[env 0, step 3] has dtype int, expected bool'
    """
    if isinstance(value, bool | np.bool_) or (
        isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.bool_
    ):
        return bool(value), None
    if isinstance(value, np.ndarray) and value.ndim:
        return False, Violation("shape", name, env, step, None, value.shape, "(), a bool")
    return False, Violation("dtype", name, env, step, None, _type_text(value), "bool")
