"""Every docstring example of the three layers runs, each module imported by its installed name.

Collected here rather than by `--doctest-modules`, which would import `spec/returns.py` a second
time as a module named `spec.returns` beside `checked_rl.spec.returns`.
"""

import doctest
import importlib
import pkgutil
from collections.abc import Iterator

import pytest

import checked_rl.properties
import checked_rl.runtime
import checked_rl.spec

LAYERS = (checked_rl.spec, checked_rl.runtime, checked_rl.properties)
OPTIONS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def module_names() -> Iterator[str]:
    """Every module of the three layers, except the `__main__` entry points."""
    for layer in LAYERS:
        yield layer.__name__
        for info in pkgutil.walk_packages(layer.__path__, f"{layer.__name__}."):
            if not info.name.endswith(".__main__"):
                yield info.name


def docstring_examples() -> list[doctest.DocTest]:
    """The docstrings with examples, found in every module (each docstring once)."""
    finder = doctest.DocTestFinder()
    tests = []
    for name in module_names():
        module = importlib.import_module(name)
        tests += [test for test in finder.find(module, name) if test.examples]
    return sorted(tests, key=lambda test: test.name)


EXAMPLES = docstring_examples()


def test_examples_are_collected() -> None:
    """The collection itself works: the spec and the runtime contribute docstring examples."""
    for layer in (checked_rl.spec, checked_rl.runtime):
        assert any(test.name.startswith(layer.__name__) for test in EXAMPLES), layer.__name__


@pytest.mark.parametrize("test", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_docstring_examples(test: doctest.DocTest) -> None:
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
