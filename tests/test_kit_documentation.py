"""Every property of the kit says what it assumes and what it accepts, in its docstring and in
the properties guide's tables, so that a new property without them fails here.

A property factory is a public function of a module of `checked_rl.properties` (found by
enumerating the package) that returns a property: a zero-argument test
(`Callable[[], None]`) or a Hypothesis state machine class (`type[RuleBasedStateMachine]`).
"""

import importlib
import inspect
import pkgutil
import re
import typing
from collections.abc import Callable
from pathlib import Path

import checked_rl.properties as kit
from checked_rl.properties import plugin

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "properties.md"
SECTION = "### What each property assumes, and what it accepts"
ASSUMES = re.compile(r"\bAssumes\b")
ACCEPTS = re.compile(r"\b[Aa]ccepts\b")


def returns_a_property(function: Callable[..., object]) -> bool:
    """Whether `function` is annotated to return a test or a state machine class."""
    returned = inspect.signature(function).return_annotation
    return returned == Callable[[], None] or typing.get_origin(returned) is type


def property_factories() -> dict[str, Callable[..., object]]:
    """`module.name` -> factory, for every public factory defined in `checked_rl.properties`."""
    found = {}
    for info in pkgutil.iter_modules(kit.__path__):
        if info.ispkg:
            continue
        module = importlib.import_module(f"checked_rl.properties.{info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or function.__module__ != module.__name__:
                continue
            if returns_a_property(function):
                found[f"{info.name}.{name}"] = function
    return found


def undocumented(factories: dict[str, Callable[..., object]]) -> list[str]:
    """The factories whose docstring lacks an "Assumes" or an "Accepts" statement."""
    return sorted(
        key
        for key, function in factories.items()
        if not (ASSUMES.search(function.__doc__ or "") and ACCEPTS.search(function.__doc__ or ""))
    )


def guide_names(text: str) -> set[str]:
    """The names in the first column of the tables of the guide's assumptions section: the
    leading dotted identifier of each code span, and each plugin test name."""
    start = text.index(SECTION)
    end = text.find("\n## ", start)
    names = set()
    for line in text[start : end if end >= 0 else None].splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = re.sub(r"`[^`]*`", lambda m: m.group().replace("|", ""), line).split("|")[1]
        for span in re.findall(r"`([^`]*)`", first_cell):
            match = re.match(r"[A-Za-z_][\w.-]*", span)
            if match:
                names.add(match.group())
    return names


def missing_from_guide(factories: dict[str, Callable[..., object]], names: set[str]) -> list[str]:
    """The factories the guide's tables do not list: by `module.name`, or by the bare name
    where no other module has a factory of that name."""
    bare = [key.split(".", 1)[1] for key in factories]
    missing = []
    for key in factories:
        name = key.split(".", 1)[1]
        if key in names or (bare.count(name) == 1 and name in names):
            continue
        missing.append(key)
    return sorted(missing)


def test_the_enumeration_finds_the_factories_of_every_kind() -> None:
    factories = property_factories()
    for key in (
        "returns.gae_matches_spec",
        "sessions.session_machine",
        "sessions.state_round_trip",
        "cartpole.step_matches_spec",
        "gridworld.step_matches_spec",
        "contract.check_agrees_with_violations",
        "mdp.policy_evaluation_is_fixed_point",
        "vector_autoreset.follows_autoreset_mode",
        "policy_robustness.leaves_inputs_unchanged",
    ):
        assert key in factories, key
    # helpers that return something else are not properties
    assert "returns.on_trace" not in factories
    assert "policy_robustness.extreme_logits" not in factories


def test_every_property_states_what_it_assumes_and_accepts() -> None:
    assert undocumented(property_factories()) == []


def test_every_property_is_in_the_guides_tables() -> None:
    assert missing_from_guide(property_factories(), guide_names(GUIDE.read_text())) == []


def test_every_plugin_property_is_in_the_guides_tables() -> None:
    names = guide_names(GUIDE.read_text())
    expected = [*plugin.ENV_PROPERTIES, *(f"gae-{name}" for name in plugin.GAE_PROPERTIES)]
    assert [name for name in expected if name not in names] == []


def undocumented_property() -> Callable[[], None]:
    """A property with no statement of its assumptions."""
    return lambda: None


def documented_property() -> Callable[[], None]:
    """A property.

    Assumes nothing; accepts everything.
    """
    return lambda: None


def test_the_checks_fail_on_a_property_without_them() -> None:
    factories = {
        "fake.undocumented_property": undocumented_property,
        "fake.documented_property": documented_property,
        "other.documented_property": documented_property,
    }
    assert undocumented(factories) == ["fake.undocumented_property"]
    names = guide_names(
        f"{SECTION}\n\n| property | checks |\n|---|---|\n"
        "| `fake.documented_property(x)`, `undocumented_property` | a `b | c` |\n\n## Next\n"
        "| `other.documented_property` | outside the section |\n"
    )
    assert names == {"fake.documented_property", "undocumented_property"}
    # a name two modules share must be qualified; one module's own name may stand bare
    assert missing_from_guide(factories, names) == ["other.documented_property"]
