"""The shared check of the `*_rejects_mismatched_arguments` properties: a bad argument is refused
with a TypeError or ValueError that names it, as jaxtyping's shape checks and the package's own
`ValueError`s do."""

from collections.abc import Callable

__all__ = ["assert_rejects_argument", "error_names_argument"]


def error_names_argument(error: Exception, name: str) -> bool:
    """Whether an error message singles out the argument `name`: jaxtyping's `parameter 'name'`
    or the package's own `name must ...`."""
    message = str(error)
    return f"parameter '{name}'" in message or f"{name} must" in message


def assert_rejects_argument(call: Callable[[], object], name: str, what: str) -> None:
    """Raise AssertionError unless `call()` raises a TypeError or ValueError naming `name`.

    `what` describes the bad argument in the failure message (for example "more steps in
    values").
    """
    try:
        call()
    except (TypeError, ValueError) as error:
        assert error_names_argument(error, name), (
            f"{what}: the error does not name {name!r}: {error}"
        )
    else:
        raise AssertionError(f"{what} was accepted")
