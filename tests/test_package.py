"""The package as a stranger installs and reads it: one import namespace and clean boundaries.

The first tests import the installed package from a directory outside the checkout, in a fresh
interpreter; the others read the sources of the three layers with `ast` and check the rules of
the architecture (docs in shared DESIGN.md and STYLE.md): no module named after a library, no
private name imported across modules, no private attribute of another object touched, no
import cycle at module level, no module longer than `MAX_MODULE_LINES`.
"""

import ast
import importlib
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import checked_rl

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("spec", "runtime", "properties")
MAX_MODULE_LINES = 400
NAMEDTUPLE_API = frozenset({"_asdict", "_replace", "_fields", "_make"})
"""Underscore names that are the public API of `collections.namedtuple` / `typing.NamedTuple`."""

PRIVATE_ATTRIBUTE_ALLOWED = {
    ("runtime/envs/cartpole_step.py", "_inductor"): (
        "torch._inductor.compile compiles a traced graph without torch.compile's per-call guards "
        "(see fused_advance), and torch._inductor.exc holds what it raises; PyTorch has no "
        "public equivalent"
    ),
    ("runtime/envs/cartpole_step.py", "_dynamo"): (
        "torch._dynamo.exc.BackendCompilerFailed is what a failed inductor compilation raises; "
        "PyTorch exports it nowhere else"
    ),
}
"""Reads of another object's private attribute that are deliberate, each with its reason."""


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_every_module_imports_by_its_installed_name_from_outside_the_checkout(
    tmp_path: Path,
) -> None:
    code = """
import importlib, pkgutil
import checked_rl
names = []
for layer in ("spec", "runtime", "properties"):
    package = importlib.import_module(f"checked_rl.{layer}")
    names.append(package.__name__)
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if not info.name.endswith(".__main__"):
            importlib.import_module(info.name)
            names.append(info.name)
print(len(names))
"""
    completed = _python(code, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert int(completed.stdout) >= 40


@pytest.mark.parametrize("name", LAYERS)
def test_the_layers_are_not_top_level_packages(tmp_path: Path, name: str) -> None:
    completed = _python(f"import {name}", tmp_path)
    assert completed.returncode != 0
    assert f"No module named '{name}'" in completed.stderr


def test_version_is_the_distributions() -> None:
    assert checked_rl.__version__ == importlib.metadata.version("checked-rl")


def _modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module of the three layers, from the source folders."""
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(("checked_rl", *parts)), path


MODULES = dict(_modules())
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}
NODES = [(name, node) for name, tree in TREES.items() for node in ast.walk(tree)]
"""Every syntax node of the three layers with its module, walked once for all the checks."""


def _relative(name: str) -> str:
    return str(MODULES[name].relative_to(ROOT))


def _top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported (not those inside functions or
    `if TYPE_CHECKING:`)."""
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.Try):
            yield from (n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom))


def test_source_tree_and_installed_modules_agree() -> None:
    """Every source module is importable under `checked_rl` (the package map covers them)."""
    assert len(MODULES) >= 40
    for layer in LAYERS:
        package = importlib.import_module(f"checked_rl.{layer}")
        assert Path(package.__file__).resolve() == (ROOT / layer / "__init__.py").resolve()


def test_no_module_is_named_after_a_library_its_package_imports() -> None:
    """A module named `torch.py` beside code that imports torch shadows it for readers (and,
    with some import modes, for Python)."""
    imported: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, node in NODES:
        if isinstance(node, ast.Import):
            imported[name] |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported[name].add(node.module.split(".")[0])
    offenders = []
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        package, _, basename = name.rpartition(".")
        libraries = set(LAYERS).union(
            *(names for other, names in imported.items() if f"{other}.".startswith(f"{package}."))
        )
        if basename in libraries - {"checked_rl"}:
            offenders.append(_relative(name))
    assert offenders == []


def test_no_private_name_is_imported_across_modules() -> None:
    offenders = [
        f"{_relative(name)}:{node.lineno} imports {alias.name} from {node.module}"
        for name, node in NODES
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("checked_rl")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert offenders == []


def test_no_relative_imports() -> None:
    """Every import names its module in full, so the checks above see every edge."""
    offenders = [
        f"{_relative(name)}:{node.lineno}"
        for name, node in NODES
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert offenders == []


ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "setattr", "hasattr", "delattr"})


def _private_by_name(node: ast.AST) -> str | None:
    """The private name that `getattr(obj, "_x")` and its kin or `obj.__dict__` reach on an
    object other than self/cls, else None. (`vars(namespace)` stays allowed: it is how an
    argparse result is read.)"""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        target = node.args[0]
        if isinstance(target, ast.Name) and target.id in ("self", "cls"):
            return None
        if node.func.id in ATTRIBUTE_FUNCTIONS and len(node.args) >= 2:
            key = node.args[1]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                if key.value.startswith("_") and not key.value.startswith("__"):
                    return f"{node.func.id}(..., {key.value!r})"
    if isinstance(node, ast.Attribute) and node.attr == "__dict__":
        if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            return ".__dict__"
    return None


def test_no_private_attribute_of_another_object_is_reached_by_name() -> None:
    offenders = [
        f"{_relative(name)}:{node.lineno} {reached}"
        for name, node in NODES
        if (reached := _private_by_name(node)) is not None
    ]
    assert offenders == []


def test_the_by_name_check_sees_what_it_looks_for() -> None:
    source = 'getattr(env, "_generator"); session.__dict__; getattr(self, "_x"); hasattr(e, "x")'
    found = [_private_by_name(node) for node in ast.walk(ast.parse(source))]
    assert [f for f in found if f] == ["getattr(..., '_generator')", ".__dict__"]


def test_no_private_attribute_of_another_object_is_touched() -> None:
    offenders = [
        f"{_relative(name)}:{node.lineno} .{node.attr}"
        for name, node in NODES
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and node.attr not in NAMEDTUPLE_API
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        and (_relative(name), node.attr) not in PRIVATE_ATTRIBUTE_ALLOWED
    ]
    assert offenders == []


def _edges(name: str) -> set[str]:
    """The package modules that importing `name` imports at its top level."""
    edges = set()
    for node in _top_level_imports(TREES[name]):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif node.level == 0 and node.module:
            targets = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            targets = []
        edges |= {target for target in targets if target in MODULES and target != name}
    return edges


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    """The import cycles of `graph` (module -> modules it imports), each as `a -> b -> a`."""
    state: dict[str, str] = {}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycle_at_module_level() -> None:
    assert find_cycles({name: _edges(name) for name in MODULES}) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    # The graph is real: the contract package's modules import each other one way.
    assert "checked_rl.runtime.contract.records" in _edges("checked_rl.runtime.contract.extremes")
    assert "checked_rl.runtime.contract.extremes" in _edges("checked_rl.runtime.contract.rules")


def test_no_module_is_longer_than_the_limit() -> None:
    lengths = {
        _relative(name): len(path.read_text().splitlines()) for name, path in MODULES.items()
    }
    too_long = {path: n for path, n in lengths.items() if n > MAX_MODULE_LINES}
    assert too_long == {}


@pytest.mark.parametrize("name", LAYERS)
def test_the_suite_itself_cannot_import_the_layers_by_their_folder_names(name: str) -> None:
    """The checkout is on `sys.path` under pytest; the root conftest refuses the bare names, so
    no test, guide or docstring example can use them unnoticed."""
    with pytest.raises(ModuleNotFoundError, match=f"checked_rl.{name}"):
        importlib.import_module(name)
