"""What `agentbot dev` and `agentbot doctor` say of a profile whose credentials boto3 found but
could not get: which profile, and that its credential_process failed when that is why."""

from __future__ import annotations

from botocore.exceptions import CredentialRetrievalError

# What boto3 lets through, besides its own errors, from a credential_process that does not run
# (its program not there, not executable: OSError) or writes no credentials JSON (a sign-in
# prompt on stdout: ValueError; JSON that is not an object, which botocore reads with .get:
# AttributeError). Callers catch these with BotoCoreError, around the credential lookup alone.
CREDENTIAL_PROCESS_NOT_RUN: tuple[type[Exception], ...] = (OSError, ValueError, AttributeError)


def credentials_unreadable(named: str, exc: Exception) -> str:
    """One line for the credentials of a profile (``named`` as the user gave it: ``--aws-profile
    prod``, ``AWS profile prod``) that raised ``exc``. Never boto3's message: a failed
    credential_process's is what the process wrote, which may be a credential."""
    process_failed = (
        isinstance(exc, CredentialRetrievalError) and exc.kwargs.get("provider") == "custom-process"
    )
    if process_failed or isinstance(exc, CREDENTIAL_PROCESS_NOT_RUN):
        return (
            f"{named}: its credential_process failed (its output is not shown: run the command in "
            "a shell to see why)"
        )
    return f"{named}: cannot get its credentials ({type(exc).__name__})"
