"""One exception hierarchy for every service, mapped once to HTTP statuses and MCP tool errors."""

from __future__ import annotations


class OpenMemoryError(Exception):
    """Base of every error this system raises on purpose. `code` travels over NATS."""

    code = "internal"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(OpenMemoryError):
    """The request itself is wrong; retrying it unchanged will fail again."""

    code = "invalid_input"
    http_status = 422


class NotFound(OpenMemoryError):
    """The thing asked for does not exist for this user."""

    code = "not_found"
    http_status = 404


class Unauthorized(OpenMemoryError):
    """No credentials, or credentials that are not valid."""

    code = "unauthorized"
    http_status = 401


class Forbidden(OpenMemoryError):
    """Valid credentials that do not allow this action."""

    code = "forbidden"
    http_status = 403


class Unavailable(OpenMemoryError):
    """A dependency is down or too slow; the same request may succeed later."""

    code = "unavailable"
    http_status = 503


class StoreUnavailable(Unavailable):
    """A store (vectors, graph) cannot be reached: work waits for it rather than being set aside."""


class Busy(Unavailable):
    """Ingest is behind: a write is refused, not dropped; the caller should retry shortly."""

    code = "busy"
    retry_after_seconds = 5


class RateLimited(OpenMemoryError):
    """Too many requests for one key; `retry_after` says when the next one will be served."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(OpenMemoryError):
    """The process was started with settings that cannot work together."""

    code = "configuration"
    http_status = 500


_BY_CODE: dict[str, type[OpenMemoryError]] = {
    cls.code: cls
    for cls in (
        OpenMemoryError,
        InvalidInput,
        NotFound,
        Unauthorized,
        Forbidden,
        Unavailable,
        Busy,
        ConfigurationError,
    )
}


def error_from_code(code: str, message: str) -> OpenMemoryError:
    """Rebuild an error that crossed the bus as (code, message)."""
    return _BY_CODE.get(code, OpenMemoryError)(message)
