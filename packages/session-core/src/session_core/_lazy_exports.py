"""A package's exports imported on first use (PEP 562's module ``__getattr__``).

The package's ``__init__`` keeps its ``from .x import Name`` lines, inside ``if TYPE_CHECKING:``
(so type checkers and readers see every name and its home), and hands its ``__getattr__`` and
``__dir__`` to this. A process that needs one corner of the package (local_stack's reaper, which
runs beside every function worker) then imports that corner, not all of it.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def _homes(init_file: str) -> dict[str, tuple[str, str]]:
    """Exported name → (its module, its name there), read from the ``TYPE_CHECKING`` block.
    Only ``from .x import Name [as Other]`` lines belong there; anything else is a mistake
    in the ``__init__`` and stops its import."""
    homes: dict[str, tuple[str, str]] = {}
    for node in ast.parse(Path(init_file).read_text(encoding="utf-8")).body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for statement in node.body:
            if not isinstance(statement, ast.ImportFrom) or not statement.module:
                raise ImportError(f"{init_file}:{statement.lineno}: only 'from .module import Name' is lazy")
            for alias in statement.names:
                if alias.name == "*":
                    raise ImportError(f"{init_file}:{statement.lineno}: a '*' import cannot be lazy")
                homes[alias.asname or alias.name] = ("." * statement.level + statement.module, alias.name)
    return homes


def lazy_exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` (whose ``__init__`` is ``init_file``)."""
    homes = _homes(init_file)

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, original = homes[name]
        value = getattr(importlib.import_module(module, package), original)
        setattr(sys.modules[package], name, value)  # found once; later lookups are plain
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return __getattr__, __dir__
