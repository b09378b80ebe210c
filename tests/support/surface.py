"""The public API as text: every exported name, its signature, and the members of classes.

``tests/unit/public_surface.txt`` holds the checked-in copy; rewrite it on purpose with::

    .venv/bin/python -m tests.support.surface --write
"""

from __future__ import annotations

import enum
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

PUBLIC_MODULES = ("buytokens", "buytokens.testing")
SNAPSHOT = Path(__file__).resolve().parents[1] / "unit" / "public_surface.txt"
_DUNDERS = frozenset({"__init__", "__call__", "__enter__", "__exit__", "__iter__", "__len__"})


def describe() -> str:
    """The public surface of every public module, one line per fact, sorted by name."""
    lines: list[str] = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        lines.append(f"module {module_name}")
        for name in sorted(module.__all__):
            lines.extend(_describe(name, getattr(module, name)))
        lines.append("")
    return "\n".join(lines)


def _describe(name: str, obj: object) -> list[str]:
    if name == "__version__":
        return [f"  {name}: str"]  # its value changes with every release, its place does not
    if inspect.isclass(obj):
        return _describe_class(name, obj)
    if inspect.isfunction(obj):
        return [f"  def {name}{_signature(obj)}"]
    return [f"  {name}: {type(obj).__name__} = {obj!r}"]


def _describe_class(name: str, cls: type[Any]) -> list[str]:
    bases = ", ".join(base.__name__ for base in cls.__bases__)
    lines = [f"  class {name}({bases})"]
    if issubclass(cls, enum.Enum):
        lines.extend(f"    {member.name} = {member.value!r}" for member in cls)
        return lines
    for member in sorted(dir(cls)):
        if member.startswith("_") and member not in _DUNDERS:
            continue
        owner = next((k for k in cls.__mro__ if member in vars(k)), None)
        if owner is None or not owner.__module__.startswith("buytokens"):
            continue
        value = vars(owner)[member]
        if inspect.isfunction(value) and not value.__module__.startswith("buytokens"):
            continue  # e.g. the __init__ that typing gives every Protocol
        lines.append(f"    {_member(member, value)}")
    return lines


def _member(name: str, value: object) -> str:
    if isinstance(value, property):
        returns = inspect.signature(value.fget).return_annotation if value.fget else "?"
        return f"property {name}: {returns}"
    if isinstance(value, classmethod | staticmethod):
        kind = "classmethod" if isinstance(value, classmethod) else "staticmethod"
        return f"{kind} {name}{_signature(value.__func__)}"
    if inspect.isfunction(value):
        return f"def {name}{_signature(value)}"
    if inspect.ismemberdescriptor(value) or inspect.isgetsetdescriptor(value):
        return f"attribute {name}"
    return f"{name} = {value!r}"


def _signature(function: Any) -> str:
    return str(inspect.signature(function))


def main(argv: list[str]) -> int:
    text = describe()
    if argv == ["--write"]:
        SNAPSHOT.write_text(text, encoding="utf-8")
        print(f"wrote {SNAPSHOT}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
