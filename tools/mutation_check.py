"""Mutation check: do our tests notice when the runtime changes?

Samples mutants of `runtime/` modules (a flipped comparison, a swapped operator, a changed
constant, an `and` for an `or`, a dropped branch), writes each one into a scratch copy of the
checkout, and runs the tests that cover that module there. A mutant is *killed* when the tests
fail (or time out), and *survives* when they pass: a surviving mutant either does not change
behaviour (an equivalent mutant, to be argued) or is a missing test.

    python tools/mutation_check.py                       # the default modules, 40 mutants
    python tools/mutation_check.py --sample 60 --seed 3 runtime/ppo/loss.py
    python tools/mutation_check.py --list runtime/scans.py   # the mutants, without running

Needs nothing beyond the project's dev dependencies, and no network. Each mutant runs the
module's tests with `pytest -x` under the Hypothesis profile of `--profile` (default `dev`);
the report ends with the score and every survivor (`--json` writes them to a file too).
"""

import argparse
import ast
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TESTS = {
    "runtime/returns.py": [
        "tests/test_runtime_returns.py",
        "tests/test_runtime_core_edges.py",
        "tests/test_kit_assumptions.py",
        "tests/test_core_defaults.py",
    ],
    "runtime/scans.py": [
        "tests/test_scans.py",
        "tests/test_runtime_returns.py",
        "tests/test_runtime_core_edges.py",
        "tests/test_core_defaults.py",
    ],
    "runtime/distributions.py": [
        "tests/test_runtime_policy.py",
        "tests/test_runtime_core_edges.py",
        "tests/test_core_defaults.py",
    ],
    "runtime/ppo/loss.py": [
        "tests/test_runtime_policy.py",
        "tests/test_runtime_core_edges.py",
        "tests/test_core_defaults.py",
        "tests/test_ppo_minibatch_loss.py",
    ],
}
"""The tests that cover each module; a module not listed runs every test file that imports it."""

COMPARISONS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
OPERATORS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitAnd,
}


@dataclass(frozen=True)
class Mutant:
    """One change at one place of one module."""

    module: str  # path relative to the checkout
    index: int  # which mutation site of the module, in `sites` order
    line: int
    description: str


@dataclass
class Outcome:
    """A mutant and what the tests said."""

    mutant: Mutant
    killed: bool
    how: str  # "failed", "timeout" or "survived"
    seconds: float


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """The ids of every docstring's constant node (they are never mutated)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """The ids of every node inside a type annotation or a module-level type alias."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    return {id(child) for root in roots for child in ast.walk(root)}


def _changes(node: ast.AST) -> Iterator[tuple[str, Callable[[], ast.AST]]]:
    """The mutations of one node: a description and a function making the replacement node."""

    def with_fields(**fields: object) -> Callable[[], ast.AST]:
        def make() -> ast.AST:
            new = copy.copy(node)
            for name, value in fields.items():
                setattr(new, name, value)
            return new

        return make

    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in COMPARISONS:
                new = COMPARISONS[type(op)]
                ops = [*node.ops[:k], new(), *node.ops[k + 1 :]]
                yield f"{type(op).__name__} -> {new.__name__}", with_fields(ops=ops)
    elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in OPERATORS:
        new = OPERATORS[type(node.op)]
        yield f"{type(node.op).__name__} -> {new.__name__}", with_fields(op=new())
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield f"{type(node.op).__name__} -> {new.__name__}", with_fields(op=new())
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert | ast.USub):
        yield f"drop {type(node.op).__name__}", lambda: node.operand
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        value = node.value
        if isinstance(value, bool):
            new_value: object = not value
        elif value == 0:
            new_value = type(value)(1)
        elif isinstance(value, int):
            new_value = value + 1
        else:
            new_value = value * 2
        yield f"constant {value!r} -> {new_value!r}", with_fields(value=new_value)
    elif isinstance(node, ast.If):
        yield "drop the if-branch", with_fields(body=[ast.Pass()])
        if node.orelse:
            yield "drop the else-branch", with_fields(orelse=[])


def _sites(tree: ast.Module) -> list[tuple[ast.AST, str, Callable[[], ast.AST]]]:
    """Every mutation site of a parsed module in a fixed order: node, description, replacement.
    Docstrings, annotations and `__all__` are left alone."""
    skipped = _docstring_nodes(tree) | _annotation_nodes(tree)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            skipped |= {id(child) for child in ast.walk(node)}
    return [
        (node, description, make)
        for node in ast.walk(tree)
        if id(node) not in skipped
        for description, make in _changes(node)
    ]


class _Replace(ast.NodeTransformer):
    """Replace one node (by identity) of a tree."""

    def __init__(self, target: ast.AST, replacement: ast.AST) -> None:
        self.target, self.replacement = target, replacement

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return self.replacement
        return self.generic_visit(node)


def mutants(module: str) -> list[Mutant]:
    """Every mutant of `module` (a path relative to the checkout)."""
    tree = ast.parse((ROOT / module).read_text())
    return [
        Mutant(module, index, getattr(node, "lineno", 0), description)
        for index, (node, description, _) in enumerate(_sites(tree))
    ]


def mutated_source(mutant: Mutant, root: Path = ROOT) -> str:
    """The module's source under `root` with the mutant applied (unparsed: comments are gone)."""
    tree = ast.parse((root / mutant.module).read_text())
    node, _, make = _sites(tree)[mutant.index]
    tree = _Replace(node, make()).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


def tests_for(module: str) -> list[str]:
    """The test files that cover `module`: `TESTS`, or those that import it."""
    if module in TESTS:
        return TESTS[module]
    dotted = "checked_rl." + module.removesuffix(".py").replace("/", ".")
    parent, _, name = dotted.rpartition(".")
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        text = path.read_text()
        if dotted in text or (f"from {parent} import" in text and name in text):
            found.append(str(path.relative_to(ROOT)))
    if not found:
        raise SystemExit(f"mutation_check: no test file imports {dotted}; add it to TESTS")
    return found


def _scratch_copy(into: Path) -> Path:
    """A copy of the checkout's sources (no virtual environment, no git) under `into`."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "site", "data", "__pycache__", ".hypothesis", ".ruff_cache", "runs"
    )
    target = into / "checkout"
    shutil.copytree(ROOT, target, symlinks=True, ignore=ignore)
    return target


def _run_tests(checkout: Path, tests: list[str], profile: str, timeout: float) -> str:
    """Run `tests` in `checkout`: "passed", "failed" or "timeout" (then pytest's last lines)."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "HYPOTHESIS_PROFILE": profile}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        result = subprocess.run(
            command, cwd=checkout, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    if result.returncode == 0:
        return "passed"
    return "failed\n" + "\n".join(result.stdout.decode(errors="replace").splitlines()[-15:])


def check(
    chosen: list[Mutant], *, profile: str, timeout: float, progress: Callable[[str], None]
) -> list[Outcome]:
    """Run every chosen mutant's tests in a scratch copy; the unmutated tests must pass first."""
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as scratch:
        checkout = _scratch_copy(Path(scratch))
        for module in sorted({m.module for m in chosen}):
            how = _run_tests(checkout, tests_for(module), profile, timeout)
            if how != "passed":
                raise SystemExit(f"mutation_check: the tests of {module} fail unmutated: {how}")
        for number, mutant in enumerate(chosen, 1):
            path = checkout / mutant.module
            original = path.read_text()
            path.write_text(mutated_source(mutant, checkout))
            start = time.monotonic()
            try:
                how = _run_tests(checkout, tests_for(mutant.module), profile, timeout)
            finally:
                path.write_text(original)
            killed = how != "passed"
            outcome = Outcome(mutant, killed, how.split("\n")[0] if killed else "survived", 0.0)
            outcome.seconds = round(time.monotonic() - start, 1)
            outcomes.append(outcome)
            progress(
                f"[{number}/{len(chosen)}] {mutant.module}:{mutant.index} (line {mutant.line}) "
                f"{mutant.description}: {outcome.how} ({outcome.seconds} s)"
            )
    return outcomes


DEFAULT_MODULES = list(TESTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=DEFAULT_MODULES, help="runtime/ modules")
    parser.add_argument("--sample", type=int, default=40, help="mutants to run (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--profile", default="dev", help="Hypothesis profile (default dev)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--json", type=Path, help="write the outcomes to this file")
    parser.add_argument(
        "--pick", nargs="+", metavar="MODULE:INDEX", help="run these mutants (see --list)"
    )
    args = parser.parse_args(argv)
    for module in args.modules:
        if not module.startswith("runtime/") or not (ROOT / module).is_file():
            parser.error(f"{module}: not a module under runtime/ of this checkout")
    if args.sample < 1:
        parser.error(f"--sample must be at least 1, got {args.sample}")
    every = [m for module in args.modules for m in mutants(module)]
    if args.list:
        for m in every:
            print(f"{m.module}:{m.index} (line {m.line}) {m.description}")
        print(f"{len(every)} mutants")
        return 0
    if args.pick:
        by_name = {f"{m.module}:{m.index}": m for m in every}
        unknown = [name for name in args.pick if name not in by_name]
        if unknown:
            parser.error(f"--pick: no mutants {unknown} among the modules' (see --list)")
        chosen = [by_name[name] for name in args.pick]
    else:
        chosen = random.Random(args.seed).sample(every, min(args.sample, len(every)))
    chosen.sort(key=lambda m: (m.module, m.index))
    print(f"{len(chosen)} of {len(every)} mutants of {', '.join(args.modules)}", flush=True)
    outcomes = check(
        chosen,
        profile=args.profile,
        timeout=args.timeout,
        progress=lambda line: print(line, flush=True),
    )
    killed = sum(o.killed for o in outcomes)
    print(f"killed {killed} of {len(outcomes)} ({100 * killed / len(outcomes):.0f}%)")
    for o in outcomes:
        if not o.killed:
            m = o.mutant
            print(f"  survived: {m.module}:{m.index} (line {m.line}) {m.description}")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1) + "\n")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
