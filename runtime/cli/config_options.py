"""Command-line options generated from a config dataclass, as tyro reads it.

tyro (https://brentyi.github.io/tyro) reads a dataclass: each field's name, type, value in a
default instance and the docstring written under it, and for each type how to read a value
from a string. Its public `tyro.constructors` API hands these over as field specs, and this
module turns each field into one argparse option of a `checked-rl` subcommand: `--num-envs INT`
for `num_envs: int`, `--anneal-lr/--no-anneal-lr` for a boolean, the field docstring as help.

The parsing itself stays with argparse, for one reason: a user's mistake must be one line on
stderr with exit code 2. `tyro.cli` reports a bad value as a multi-line panel, and its only
public switch, `console_outputs=False`, drops the message altogether (its hook for parse
errors is private and marked unstable). Through argparse, tyro's reading of the types keeps
the one-line `checked-rl train: error: argument --updates: expected INT, got 'many'`.
"""

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from tyro.constructors import (
    ConstructorRegistry,
    PrimitiveTypeInfo,
    StructConstructorSpec,
    StructTypeInfo,
    UnsupportedTypeAnnotationError,
)

__all__ = ["add_config_options", "config_overrides"]


def add_config_options(
    parser: argparse.ArgumentParser, defaults: Any, *, defaults_label: str = "default"
) -> None:
    """Add one option per field of the dataclass instance `defaults` to `parser`.

    Field `num_envs: int` becomes `--num-envs INT`, a boolean `x` becomes `--x/--no-x`. An
    option that is not given leaves no attribute in the parsed namespace (see
    `config_overrides`), so the caller decides what a missing field takes. The help is the
    field docstring, then `(DEFAULTS_LABEL: value)` with the value in `defaults`.
    """
    cls = type(defaults)
    for field in _struct_spec(defaults).fields:
        helptext = field.helptext() if callable(field.helptext) else field.helptext
        # argparse %-formats help strings: a literal % in a docstring must be doubled.
        help_text = f"{helptext or ''} ({defaults_label}: {field.default})".replace("%", "%%")
        option = "--" + field.name.replace("_", "-")
        if field.type is bool:
            parser.add_argument(option, dest=field.name, default=argparse.SUPPRESS,
                                action=argparse.BooleanOptionalAction, help=help_text)
            continue
        spec = ConstructorRegistry.get_primitive_spec(PrimitiveTypeInfo.make(field.type, set()))
        if isinstance(spec, UnsupportedTypeAnnotationError) or spec.nargs != 1:
            raise TypeError(
                f"{cls.__name__}.{field.name}: expected a type read from one command-line "
                f"value (int, float, str, a Literal, ...), got {field.type!r}"
            )
        parser.add_argument(option, dest=field.name, default=argparse.SUPPRESS,
                            type=_reader(spec.instance_from_str, spec.metavar),
                            metavar=spec.metavar, help=help_text)


def config_overrides(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of dataclass `cls` given on the command line, by name, with their values."""
    given = vars(args)
    return {field.name: given[field.name] for field in dataclasses.fields(cls)
            if field.name in given}


def _struct_spec(defaults: Any) -> StructConstructorSpec:
    """tyro's field specs of the dataclass of `defaults`, with its values as the defaults."""
    info = StructTypeInfo.make(type(defaults), defaults, in_union_context=False)
    spec = ConstructorRegistry.get_struct_spec(info)
    if not isinstance(spec, StructConstructorSpec):
        raise TypeError(f"expected an instance of a dataclass, got {defaults!r}")
    return spec


def _reader(instance_from_str: Callable[[list[str]], Any], metavar: str) -> Callable[[str], Any]:
    """An argparse `type` reading one value with tyro; a bad one is argparse's one-line error."""

    def read(text: str) -> Any:
        try:
            return instance_from_str([text])
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(f"expected {metavar}, got {text!r}") from None

    return read
