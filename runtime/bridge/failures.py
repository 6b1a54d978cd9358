"""How a bridge server turns an environment's failure into an error reply.

An exception inside an environment's method (`call_env`) or a value that breaks the rules of
`spec.host_values` (`obeyed`) becomes an `EnvironmentFailure`, which the server sends as an
error reply of kind "environment" (with the traceback) or "contract" (with the violation's
fields); the client raises `EnvironmentStepError` or `ContractViolation` from it.
"""

import sys
import traceback
from collections.abc import Callable
from typing import Any

from checked_rl.runtime.bridge.messages import clip_text
from checked_rl.spec.contract import Violation

__all__ = ["EnvironmentFailure", "call_env", "obeyed"]


class EnvironmentFailure(Exception):
    """A failure of one environment, carried to the client as an error reply.

    Args:
        message: what happened, without saying which environment (the client knows its index).
        kind: "environment" (it raised) or "contract" (it handed over a value that breaks the
            rules of `spec.host_values`).
        env: the environment's index on this server.
        fields: more header fields for the reply.
    """

    def __init__(self, message: str, kind: str, *, env: int, **fields: Any) -> None:
        super().__init__(clip_text(message))
        self.kind = kind
        self.fields = {"env": env, **fields}


def call_env(index: int, what: str, call: Callable[[], Any], *action: Any) -> Any:
    """`call()`, an environment's method; whatever it raises becomes `EnvironmentFailure`
    (naming `what`, and the `action` where one is given)."""
    try:
        return call()
    except BaseException as error:
        what += "".join(f" (action {each})" for each in action)
        trace = "".join(traceback.format_exception(error))
        print(trace, file=sys.stderr, end="")
        raise EnvironmentFailure(
            f"{type(error).__name__}: {error}",
            "environment",
            env=index,
            call=clip_text(what),
            traceback=clip_text(trace),
        ) from None


def obeyed(checked: tuple[Any, Violation | None]) -> Any:
    """The value of a `spec.host_values` rule, or the contract failure of its violation.

    The violation travels as its fields; `at_step` says whether it names the step (the client
    knows which), and a shape travels as a list, anything else as text.
    """
    value, violation = checked
    if violation is None:
        return value
    found = violation.value
    record = {
        "kind": violation.kind,
        "field": violation.field,
        "at_step": violation.step is not None,
        "value": [int(n) for n in found] if violation.kind == "shape" else clip_text(str(found)),
        "bound": clip_text(violation.bound),
    }
    raise EnvironmentFailure(violation.message, "contract", env=violation.env, violation=record)
