"""The Python examples of the Markdown docs: found, checked for markers, and run in order.

Every fenced block tagged ``python`` (or ``py``, ``python3``) runs, top to bottom,
in one namespace per document, so an example may use what an earlier one defined.
The only way out is a reviewed marker on the line right above the fence::

    <!-- docs-test: compile-only (why it cannot run here) -->

which compiles the block without running it. A marker without a reason, an
unknown marker, a marker that is not above a Python block, an indented Python
block and an unclosed fence are errors, never a silent skip.

Standard library only: the install test copies this file into a fresh virtualenv
and runs it there as a script (``python docs.py FILE.md...``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

PYTHON = frozenset({"python", "py", "python3"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)")
_MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<directive>[\w-]*)\s*(?P<reason>.*?)\s*-->\s*$")


class DocsError(Exception):
    """A document's examples are marked or fenced in a way the runner refuses."""


@dataclass(frozen=True)
class CodeBlock:
    """One Python example: where it is, its code, and why it is only compiled (if it is)."""

    path: Path
    line: int  # the line of the example's first line of code, counting from 1
    code: str
    compile_only: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def compiled(self) -> object:
        # Padding puts each line at its own line number, so tracebacks point into the document.
        return compile("\n" * (self.line - 1) + self.code, str(self.path), "exec")


def python_blocks(path: Path) -> list[CodeBlock]:
    """The document's Python examples, in order; raises DocsError for a bad marker or fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[CodeBlock] = []
    pending: tuple[int, str] | None = None  # a compile-only marker waiting for its block
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        marker = _MARKER.match(line.strip())
        if marker is not None:
            if marker["directive"] != "compile-only":
                raise DocsError(f"{path}:{number}: unknown docs-test marker {line.strip()!r}")
            reason = marker["reason"].strip("() ")
            if not reason:
                raise DocsError(f"{path}:{number}: a compile-only marker must say why")
            pending = (number, reason)
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if pending is not None and line.strip():
                raise DocsError(f"{path}:{pending[0]}: the marker is not right above a block")
            continue
        language = fence["info"].lower()
        if language in PYTHON and fence["indent"]:
            raise DocsError(f"{path}:{number}: an indented Python block cannot be run; unindent it")
        if pending is not None and (language not in PYTHON or pending[0] != number - 1):
            raise DocsError(f"{path}:{pending[0]}: the marker is not right above a Python block")
        start = number
        closing = fence["fence"]
        body: list[str] = []
        while True:
            if number >= len(lines):
                raise DocsError(f"{path}:{start}: the code block is never closed")
            line = lines[number]
            number += 1
            if _closes(line, closing):
                break
            body.append(line)
        if language in PYTHON:
            reason = None if pending is None else pending[1]
            blocks.append(CodeBlock(path, start + 1, "\n".join(body) + "\n", reason))
        pending = None
    if pending is not None:
        raise DocsError(f"{path}:{pending[0]}: the marker is not right above a Python block")
    return blocks


def _closes(line: str, fence: str) -> bool:
    text = line.strip()
    return len(text) >= len(fence) and set(text) == {fence[0]}


def run_document(path: Path) -> list[CodeBlock]:
    """Compile every example of ``path`` and run those not marked compile-only, in order."""
    blocks = python_blocks(path)
    namespace: dict[str, object] = {"__name__": f"docs:{path.name}"}
    for block in blocks:
        code = block.compiled()
        if block.compile_only is None:
            exec(code, namespace)
    return blocks


def main(paths: list[str]) -> int:
    for name in paths:
        for block in run_document(Path(name)):
            state = f"compiled only: {block.compile_only}" if block.compile_only else "ran"
            print(f"{block.where}: {state}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
