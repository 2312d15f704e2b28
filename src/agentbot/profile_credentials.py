"""What `agentbot dev` and `agentbot doctor` say of a profile whose credentials boto3 found but
could not get: which profile, and that its credential_process failed when that is why."""

from __future__ import annotations

from botocore.exceptions import CredentialRetrievalError


def credentials_unreadable(named: str, exc: Exception) -> str:
    """One line for the credentials of a profile (``named`` as the user gave it: ``--aws-profile
    prod``, ``AWS profile prod``) that raised ``exc``. Never boto3's message: a failed
    credential_process's is what the process wrote, which may be a credential."""
    if isinstance(exc, CredentialRetrievalError) and exc.kwargs.get("provider") == "custom-process":
        return (
            f"{named}: its credential_process failed (its output is not shown: run the command in "
            "a shell to see why)"
        )
    return f"{named}: cannot get its credentials ({type(exc).__name__})"
