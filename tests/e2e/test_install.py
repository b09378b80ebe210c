"""``pip install .`` into a fresh virtualenv gives a package whose documented examples run.

The new environment borrows this one's dependencies (a path entry to its
site-packages) so that nothing but buytokens itself is built and installed; it
runs with ``-I``, from a directory outside the source tree, so the only
``buytokens`` it can import is the installed one.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import buytokens
from tests.support.docs import python_blocks

ROOT = Path(__file__).resolve().parents[2]
LICENSE_WARNING = "project.license"  # setuptools' "as a TOML table is deprecated" warning


def _copy_sources(target: Path) -> Path:
    """What ``pip install .`` needs, without build/ or egg-info litter in the work tree."""
    source = target / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    return source


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_a_fresh_install_runs_the_quick_start_and_the_guide(tmp_path: Path) -> None:
    """Installed non-editable, buytokens imports from site-packages, reports its version, and
    the quick start and every example of docs/LIBRARY.md run against it; the build prints no
    license deprecation warning."""
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = environment / "bin" / "python"
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
    ).stdout.strip()
    # This environment's packages, as a plain path entry: its own .pth files (the editable
    # install of this work tree among them) are not processed, so src/ stays out of sight.
    Path(purelib, "borrowed-dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8"
    )

    source = _copy_sources(tmp_path)
    install = _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-cache-dir",
        "--verbose",
        source,
        cwd=tmp_path,
    )
    assert LICENSE_WARNING not in install.stdout + install.stderr

    elsewhere = tmp_path / "service"
    elsewhere.mkdir()
    where = _run(
        python,
        "-I",
        "-c",
        "import importlib.metadata, buytokens; "
        "print(buytokens.__file__); print(importlib.metadata.version('buytokens'))",
        cwd=elsewhere,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(environment)
    assert where[1] == buytokens.__version__
    assert Path(where[0]).with_name("py.typed").exists()
    version = _run(environment / "bin" / "buytokens", "--version", cwd=elsewhere)
    assert version.stdout == f"buytokens {buytokens.__version__}\n"

    guide = ROOT / "docs" / "LIBRARY.md"
    runner = shutil.copy2(ROOT / "tests" / "support" / "docs.py", tmp_path / "run_docs.py")
    blocks = python_blocks(guide)
    (elsewhere / "quick_start.py").write_text(blocks[0].code, encoding="utf-8")
    printed = _run(python, "-I", "quick_start.py", cwd=elsewhere).stdout.splitlines()
    assert "package_500k 500,000 tokens ¥35.00" in printed
    assert "1000" in printed
    report = _run(python, "-I", runner, guide, cwd=elsewhere).stderr.splitlines()
    assert [line for line in report if line.endswith(": ran")] == [
        f"{block.where}: ran" for block in blocks if block.compile_only is None
    ]
