"""MkDocs hook: show the doctests of docstrings as Python console code blocks.

The spec's docstrings carry bare doctests (`>>> ` lines followed by their output), which plain
Markdown would read as nested block quotes. This hook adds a Markdown preprocessor, used for the
pages and for the docstrings that mkdocstrings renders, that fences every run of doctest lines
(from a `>>> ` line to the next blank line) as a `pycon` code block. Lines already inside a
fenced code block are left alone.
"""

import re

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority

PROMPT = re.compile(r"^(?P<indent>\s*)>>>( |$)")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
# Run before the fenced-code preprocessors of Python-Markdown and pymdownx (priority 25-32).
PREPROCESSOR_PRIORITY = 40


class DoctestBlocks(Preprocessor):
    """Wrap each doctest run in a fenced `pycon` block at the run's own indentation."""

    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        open_fence: str | None = None
        i = 0
        while i < len(lines):
            line = lines[i]
            fence = FENCE.match(line)
            if open_fence is not None:
                if fence and fence.group(1)[0] == open_fence[0] and len(fence.group(1)) >= len(
                    open_fence
                ):
                    open_fence = None
                out.append(line)
                i += 1
                continue
            if fence:
                open_fence = fence.group(1)
                out.append(line)
                i += 1
                continue
            prompt = PROMPT.match(line)
            if prompt is None:
                out.append(line)
                i += 1
                continue
            indent = prompt["indent"]
            if out and out[-1].strip():
                out.append("")
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            out.append("")
        return out


class DoctestBlocksExtension(Extension):
    """The Markdown extension registering `DoctestBlocks`."""

    def extendMarkdown(self, md: Markdown) -> None:
        md.preprocessors.register(DoctestBlocks(md), "doctest_blocks", PREPROCESSOR_PRIORITY)


@event_priority(100)  # before mkdocstrings copies the extension list in its own on_config
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Add the extension for the site's pages and for mkdocstrings' docstrings."""
    config.markdown_extensions.append(DoctestBlocksExtension())  # type: ignore[arg-type]
    return config
