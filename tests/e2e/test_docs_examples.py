"""The Python examples in the README and the docs run as written (see tests/support/docs.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.docs import CodeBlock, DocsError, python_blocks, run_document

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([*ROOT.glob("*.md"), *ROOT.glob("docs/*.md")])
_ENVIRONMENT = ("MONGODB_URI", "BUYTOKENS_", "STRIPE_", "VITE_STRIPE_", "JWT_SECRET")


@pytest.fixture
def clean_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and none of the product's environment variables."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(_ENVIRONMENT):
            monkeypatch.delenv(name)
    return tmp_path


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_python_examples_of_each_document_run(document: Path, clean_room: Path) -> None:
    """Every Python block of the document runs in order, or compiles where a marker says why."""
    run_document(document)


def test_the_library_guide_and_the_readme_have_examples_to_run() -> None:
    """The guide's quick start and the README's example are found and run, not just compiled."""
    for path in (ROOT / "docs" / "LIBRARY.md", ROOT / "README.md"):
        running = [block for block in python_blocks(path) if block.compile_only is None]
        assert running, f"{path} has no runnable Python example"
        assert "from buytokens import" in running[0].code


def _blocks(tmp_path: Path, text: str) -> list[CodeBlock]:
    path = tmp_path / "doc.md"
    path.write_text(text, encoding="utf-8")
    return python_blocks(path)


def test_a_marker_with_a_reason_compiles_its_block_only(tmp_path: Path) -> None:
    """The reviewed marker is the one way to keep a block from running, and it says why."""
    blocks = _blocks(
        tmp_path,
        "text\n\n```python\nx = 1\n```\n\n<!-- docs-test: compile-only (needs Flask) -->\n"
        "```python\nimport flask\n```\n\n```sh\nls\n```\n",
    )
    assert [(b.line, b.code, b.compile_only) for b in blocks] == [
        (4, "x = 1\n", None),
        (9, "import flask\n", "needs Flask"),
    ]


def test_a_block_that_fails_points_at_its_line_in_the_document(tmp_path: Path) -> None:
    """A failing example's traceback names the document and the line."""
    path = tmp_path / "doc.md"
    path.write_text("# t\n\n```python\nx = 1\nraise ValueError(x)\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="1") as info:
        run_document(path)
    frame = info.traceback[-1]
    assert (Path(str(frame.path)), frame.lineno + 1) == (path, 5)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<!-- docs-test: compile-only -->\n```python\nx\n```\n", "must say why"),
        ("<!-- docs-test: skip (slow) -->\n```python\nx\n```\n", "unknown docs-test marker"),
        ("<!-- docs-test: compile-only (x) -->\n\n```python\nx\n```\n", "not right above"),
        ("<!-- docs-test: compile-only (x) -->\n```sh\nls\n```\n", "not right above"),
        ("<!-- docs-test: compile-only (x) -->\n", "not right above"),
        ("- item\n\n  ```python\n  x = 1\n  ```\n", "indented Python block"),
        ("```python\nx = 1\n", "never closed"),
    ],
)
def test_a_block_is_never_left_out_silently(tmp_path: Path, text: str, problem: str) -> None:
    """Markers without a reason, unknown markers, stray markers and unrunnable fences fail."""
    with pytest.raises(DocsError, match=problem):
        _blocks(tmp_path, text)
