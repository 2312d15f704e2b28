"""Profiles' credential_process commands that give no credentials, for dev's and doctor's tests.
Each is a ``str.format`` template: ``{written}`` is what the process writes (or names), which
must never be shown, as it may be a credential."""

from __future__ import annotations

import pytest

FAILING_CREDENTIAL_PROCESSES = [
    pytest.param("sh -c 'echo {written}; echo {written} >&2; exit 1'", id="exits-1"),
    # a sign-in prompt on stdout, and a helper not installed: boto3 raises no error of its own
    pytest.param("sh -c 'echo {written}; echo {written} >&2'", id="writes-no-json"),
    pytest.param("/nonexistent/{written}-helper", id="program-not-there"),
    # JSON, but not an object: botocore reads it with .get (AttributeError)
    pytest.param("sh -c 'echo 123456; echo {written} >&2'", id="writes-a-json-number"),
]
