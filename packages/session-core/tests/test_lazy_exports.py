"""session_core's names are imported on first use, each from the module its __init__ names."""

from __future__ import annotations

import subprocess
import sys

import pytest
import session_core


def test_every_exported_name_resolves_to_its_home_modules_object() -> None:
    for name in session_core.__all__:
        value = getattr(session_core, name)
        assert value is not None, name
    assert session_core.TurnLedger.__module__ == "session_core._turn_ledger"
    assert set(session_core.__all__) <= set(dir(session_core))


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
