"""The one error family of agent-runtime; callers branch on the class and its attributes."""

from __future__ import annotations

from collections.abc import Sequence


class AgentRuntimeError(Exception):
    """Base of every error agent-runtime raises on purpose."""

    retryable: bool = False


class ClaudeConfigError(AgentRuntimeError):
    """Raised at container start when a claude-config file is missing or malformed.

    ``file`` is the path of the file to fix, ``field`` the JSON field / front-matter key
    (dotted, e.g. ``agents.summarizer.tools[2]``) or ``None`` for the whole file.
    ``problems`` holds every problem the check found, each a ClaudeConfigError (just this one
    unless it is a :class:`ClaudeConfigErrors`). ``variables`` names the ``${NAME}``s whose
    values made the problem (empty: the file as written is wrong).
    """

    def __init__(self, file: str, field: str | None, reason: str, *, variables: Sequence[str] = ()) -> None:
        where = f"{file}: {field}" if field else file
        super().__init__(f"claude-config error in {where}: {reason}")
        self.file = file
        self.field = field
        self.reason = reason
        self.variables = tuple(variables)
        self.problems: tuple[ClaudeConfigError, ...] = (self,)


class ClaudeConfigErrors(ClaudeConfigError):
    """Raised when one check of claude-config found several problems: ``problems`` lists them
    in the order checked, so the operator fixes them all in one round; ``file``, ``field`` and
    ``reason`` are the first one's."""

    def __init__(self, problems: Sequence[ClaudeConfigError]) -> None:
        first = problems[0]
        super().__init__(first.file, first.field, first.reason)
        # the message names every problem, not only the first
        self.args = ("; ".join(str(problem) for problem in problems),)
        self.problems = tuple(problems)


class McpSecretMissingError(ClaudeConfigError):
    """A secret header of mcp.json (``headers_from_ssm``) names an SSM parameter that is
    missing or empty: ``parameter`` is the one to create."""

    def __init__(self, file: str, field: str, parameter: str, reason: str) -> None:
        super().__init__(file, field, f"{parameter}: {reason}")
        self.parameter = parameter


class ModelBackendError(AgentRuntimeError):
    """Raised at container start when the model backend settings cannot be used
    (no API key parameter, Bedrock role cannot be assumed); names the setting.
    ``retryable`` only when the cause may pass by itself (STS throttled or unreachable);
    ``remedy``, where the deployed bot's fix is not the obvious one, what to do about it."""

    def __init__(
        self, setting: str, reason: str, *, retryable: bool = False, remedy: str | None = None
    ) -> None:
        super().__init__(f"model backend setting {setting}: {reason}")
        self.setting = setting
        self.reason = reason
        self.retryable = retryable
        self.remedy = remedy


class AttachmentError(AgentRuntimeError):
    """Raised when a staged attachment is outside the session's S3 prefix or cannot be fetched."""

    def __init__(self, s3_key: str, reason: str, *, retryable: bool = False) -> None:
        super().__init__(f"attachment {s3_key!r}: {reason}")
        self.s3_key = s3_key
        self.reason = reason
        self.retryable = retryable


class UntrustedCliOutputError(AgentRuntimeError):
    """Raised when the CLI's output holds what the CLI never writes (a session id that is not a
    UUID): a tool reached the CLI's output pipe. The run's outcome is not used."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the CLI's output cannot be trusted: {what}")
        self.what = what
