"""session_core's names are imported on first use, each from the module its __init__ names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import session_core


def test_every_exported_name_is_its_home_modules_object() -> None:
    from importlib import import_module

    from session_core._lazy_exports import _homes

    homes = _homes(session_core.__file__ or "")
    assert set(homes) == set(session_core.__all__)
    for name, (module, original) in homes.items():
        assert getattr(session_core, name) is getattr(import_module(module, "session_core"), original), name
    assert set(session_core.__all__) <= set(dir(session_core))


def test_a_renamed_import_and_a_non_lazy_line_are_read_right(tmp_path: Path) -> None:
    from session_core._lazy_exports import _homes

    init = tmp_path / "__init__.py"
    init.write_text("if TYPE_CHECKING:\n    from ._a import thing as renamed\n    from .b.c import d\n")
    assert _homes(str(init)) == {"renamed": ("._a", "thing"), "d": (".b.c", "d")}
    init.write_text("if TYPE_CHECKING:\n    from . import _a\n")
    refused = re.escape("__init__.py:2: only 'from .module import Name' is lazy")
    with pytest.raises(ImportError, match=refused):
        _homes(str(init))


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    with pytest.raises(AttributeError, match="module 'session_core' has no attribute 'NoSuchThing'"):
        _ = session_core.NoSuchThing
    with pytest.raises(ImportError):
        exec("from session_core import NoSuchThing")


def test_one_corner_costs_only_that_corner() -> None:
    """The process-tree helpers (the reaper beside each function worker) load without msgspec,
    structlog or botocore."""
    probe = (
        "import sys; from session_core import become_subreaper, descendants; "
        "print(sorted(m for m in ('msgspec', 'structlog', 'botocore', 'boto3') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
