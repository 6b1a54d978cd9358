"""The documentation site builds strictly, and every example in the guides runs.

Conventions for the fenced code blocks of a guide (`docs/guides/*.md`):

- ```` ```python ```` blocks run in order, in one namespace per page, with a fresh temporary
  directory as the working directory.
- A block with a title (```` ```python title="test_mine.py" ````, shown by Material as a file
  name) is a file: it is written under that name into the page's directory, not run.
- ```` ```sh ```` blocks run as one bash script each (`set -euo pipefail`) in the same
  directory, with this interpreter's `bin` directory first on `PATH` (so `python` and
  `checked-rl` are the installed ones).
- A ```` ```text ```` block directly after a `python` or `sh` block is that block's expected
  output, compared like a doctest (whitespace normalised, `...` matches anything).
- ```` ```console ```` blocks and every other language are shown, never run: they are for
  commands too slow for the test suite, such as a full training run.
"""

import doctest
import os
import re
import subprocess
import sys
import textwrap
import traceback
from contextlib import redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
RUN_LANGUAGES = ("python", "sh")
OUTPUT_LANGUAGE = "text"
SH_TIMEOUT_S = 60
BUILD_TIMEOUT_S = 90
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<info>[^`]*)$")
TITLE = re.compile(r'title="(?P<title>[^"]+)"')
README_LINK = re.compile(r"\]\(([^)\s]+)\)")
OUTPUT_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    language: str
    source: str
    line: int
    title: str | None = None
    expected_output: str | None = None


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order, with their 1-based start lines."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip()
        language = info.split()[0].strip("{}.") if info else ""
        title = TITLE.search(info)
        start = i + 1
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"unclosed code fence opened at line {start}")
        source = textwrap.dedent("\n".join(body)) + "\n"
        blocks.append(Block(language, source, start, title and title["title"]))
        i += 1
    return blocks


def runnable_blocks(text: str) -> list[Block]:
    """The file blocks and the `python` and `sh` blocks of a page, in order, each runnable block
    with the `text` block that follows it as its expected output."""
    blocks = fenced_blocks(text)
    runnable: list[Block] = []
    for index, block in enumerate(blocks):
        if block.title is not None:
            runnable.append(block)
            continue
        if block.language not in RUN_LANGUAGES:
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        expected = following.source if following and following.language == OUTPUT_LANGUAGE else None
        runnable.append(Block(block.language, block.source, block.line, None, expected))
    return runnable


def run_python(block: Block, namespace: dict[str, object], where: str) -> str:
    """Execute a python block in `namespace`; return what it printed."""
    printed = StringIO()
    try:
        with redirect_stdout(printed):
            exec(compile(block.source, where, "exec"), namespace)
    except Exception as error:
        raise AssertionError(
            f"{where} raised {type(error).__name__}: {error}\n"
            f"{traceback.format_exc()}\nprinted before the error:\n{printed.getvalue()}"
        ) from error
    return printed.getvalue()


def run_sh(block: Block, cwd: Path, where: str) -> str:
    """Run a sh block with bash in `cwd`; return its stdout and stderr together."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + block.source],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SH_TIMEOUT_S,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(
            f"{where} exited with status {result.returncode}, expected 0; output:\n{output}"
        )
    return output


def check_output(block: Block, got: str, where: str) -> None:
    """Compare what a block printed with the `text` block shown after it."""
    if block.expected_output is None:
        return
    checker = doctest.OutputChecker()
    if not checker.check_output(block.expected_output, got, OUTPUT_FLAGS):
        example = doctest.Example(source="", want=block.expected_output)
        raise AssertionError(
            f"{where}: the output differs from the text block shown after it\n"
            + checker.output_difference(example, got, OUTPUT_FLAGS)
        )


def test_guides_exist() -> None:
    """The guides directory is found, so the parametrised test below is not vacuous."""
    assert GUIDES, f"expected guide pages under docs/guides, found {GUIDES}"


def test_fenced_blocks_pairs_output_with_the_block_before_it() -> None:
    """The parser finds languages, start lines and the expected output of a block."""
    page = (
        "intro\n\n```python\nprint(1)\n```\n\n```text\n1\n```\n\n    ```sh\n    ls\n    ```\n"
        '\n```python title="mine.py"\nx = 1\n```\n\n```console\n$ make train\n```\n'
    )
    blocks = runnable_blocks(page)
    assert [(b.language, b.line, b.title, b.expected_output) for b in blocks] == [
        ("python", 3, None, "1\n"),
        ("sh", 11, None, None),
        ("python", 15, "mine.py", None),
    ]
    assert blocks[1].source == "ls\n"
    assert blocks[2].source == "x = 1\n"


@pytest.mark.parametrize("page", GUIDES, ids=[page.stem for page in GUIDES])
def test_guide_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every python and sh block of the page runs in order and prints what the page shows;
    file blocks are written to disk where they appear."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"guide_{page.stem.replace('-', '_')}"}
    for number, block in enumerate(runnable_blocks(page.read_text()), start=1):
        where = f"docs/guides/{page.name} {block.language} block {number} (line {block.line})"
        if block.title is not None:
            (tmp_path / block.title).write_text(block.source)
            continue
        if block.language == "python":
            got = run_python(block, namespace, where)
        else:
            got = run_sh(block, tmp_path, where)
        check_output(block, got, where)


def test_every_page_is_in_the_navigation() -> None:
    """Each Markdown page under docs/ is listed in mkdocs.yml's nav (MkDocs only logs orphans)."""
    config = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    orphans = [page for page in pages if f": {page}" not in config]
    assert not orphans, f"pages missing from the nav of mkdocs.yml: {orphans}"


def test_readme_links_resolve() -> None:
    """Every relative link and image of the README points at a file of the repository."""
    readme = (ROOT / "README.md").read_text()
    targets = [t for t in README_LINK.findall(readme) if "://" not in t and not t.startswith("#")]
    assert targets, "expected links into the documentation in README.md"
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds: no broken link, no docstring mkdocstrings cannot read."""
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", site]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict failed with status {result.returncode}:\n"
        f"{result.stdout}{result.stderr}"
    )
    assert (site / "index.html").is_file()
