"""`tools/mutation_check.py` makes real mutants and finds the tests of a module (running the
mutants themselves takes minutes: that is the script's own job, see CONTRIBUTING.md)."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "mutation_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("mutation_check_tool", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tool = _load()


@pytest.mark.parametrize("module", tool.DEFAULT_MODULES)
def test_every_mutant_compiles_and_changes_the_module(module: str) -> None:
    original = ast.dump(ast.parse((ROOT / module).read_text()))
    mutants = tool.mutants(module)
    assert len(mutants) >= 10
    for mutant in mutants:
        source = tool.mutated_source(mutant)
        compile(source, module, "exec")
        assert ast.dump(ast.parse(source)) != original, mutant


def test_mutants_leave_docstrings_annotations_and_all_alone() -> None:
    described = {m.description for m in tool.mutants("runtime/distributions.py")}
    assert {"Gt -> GtE", "drop USub", "BitAnd -> BitOr", "drop the if-branch"} <= described
    lines = {m.line for m in tool.mutants("runtime/distributions.py")}
    source = (ROOT / "runtime/distributions.py").read_text().splitlines()
    untouched = ('"', "Logits", "Actions", "PerSample", "__all__")
    assert not any(source[line - 1].lstrip().startswith(untouched) for line in lines)


def test_the_tests_of_a_module_are_its_table_entry_or_its_importers() -> None:
    assert tool.tests_for("runtime/ppo/loss.py") == tool.TESTS["runtime/ppo/loss.py"]
    found = tool.tests_for("runtime/shapes.py")
    assert found and all((ROOT / path).is_file() for path in found)
    for tests in tool.TESTS.values():
        assert all((ROOT / path).is_file() for path in tests)


def test_the_command_line_lists_mutants_and_refuses_other_modules() -> None:
    run = [sys.executable, str(SCRIPT)]
    listed = subprocess.run([*run, "--list", "runtime/ppo/loss.py"], capture_output=True, text=True)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[-1] == f"{len(tool.mutants('runtime/ppo/loss.py'))} mutants"
    refused = subprocess.run([*run, "spec/ppo.py"], capture_output=True, text=True)
    assert refused.returncode == 2
    assert "not a module under runtime/" in refused.stderr
    unknown = subprocess.run(
        [*run, "--pick", "runtime/ppo/loss.py:9999"], capture_output=True, text=True
    )
    assert unknown.returncode == 2
    assert "no mutants" in unknown.stderr
