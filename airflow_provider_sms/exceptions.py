"""Typed errors raised by the gateway hooks; each carries the gateway's own code and message."""

from __future__ import annotations


class SmsGatewayError(Exception):
    """A gateway refused or failed a request.

    :param message: readable text; never contains a secret (the hook scrubs it).
    :param gateway: connection type of the gateway (``smstools``, ``smsgateway24``, ``textboost``).
    :param code: the gateway's own error code, if it sent one.
    :param status_code: the HTTP status, if a response arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        gateway: str | None = None,
        code: str | int | None = None,
        status_code: int | None = None,
    ) -> None:
        self.message = message
        self.gateway = gateway
        self.code = code
        self.status_code = status_code
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.gateway}: " if self.gateway else ""
        details = [f"HTTP {self.status_code}"] if self.status_code else []
        if self.code not in (None, ""):
            details.append(f"code {self.code}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{where}{self.message}{suffix}"


class SmsAuthError(SmsGatewayError):
    """Credentials were refused (wrong secret, expired or revoked token, missing permission)."""


class SmsValidationError(SmsGatewayError):
    """The request was refused as invalid (bad number, missing field, unknown id); retrying will not help."""


class SmsTransientError(SmsGatewayError):
    """A failure that may pass (5xx, connection trouble); the request is safe to retry only if
    ``request_sent`` is False or the request does not create messages."""

    def __init__(self, message: str, *, request_sent: bool = True, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.request_sent = request_sent


class SmsRateLimitError(SmsTransientError):
    """HTTP 429: the gateway did not process the request and asks to wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        kwargs.setdefault("request_sent", False)  # a 429 means the request was not processed
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class SmsAmbiguousSendError(SmsGatewayError):
    """A message-creating request left, but its answer was lost: the gateway may or may not have
    stored the messages. Look them up before sending again (see the ledger)."""


class SmsMalformedResponseError(SmsTransientError):
    """The gateway answered, but the hook cannot read the answer: not JSON, empty, cut off, larger
    than the hooks read, or without what the endpoint promises (a message id, a list). The message
    names the gateway and the endpoint. Reads may be retried; see the send variant below."""


class SmsMalformedSendResponseError(SmsMalformedResponseError, SmsAmbiguousSendError):
    """An unreadable answer to a message-creating request: the request reached a server, which may
    have stored the messages, so nothing is ``accepted`` without a parsed acceptance. Like every
    :class:`SmsAmbiguousSendError`, look the messages up before sending them again."""


class SmsRedirectError(SmsGatewayError):
    """The gateway answered with a redirect (3xx). Hooks never follow one: the credentials would go
    to the other host. ``location`` is the target, without userinfo or query (they may hold secrets).
    Retrying does not help: fix the connection's host."""

    def __init__(self, message: str, *, location: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.location = location


class SmsRedirectedSendError(SmsRedirectError, SmsAmbiguousSendError):
    """A redirect answering a message-creating request: the first server received the request and
    may have stored it, so the messages are looked up like any :class:`SmsAmbiguousSendError`."""


class SmsPagingError(SmsGatewayError):
    """A listing does not advance (the same page again, a page number that does not grow) or has
    more pages than the ``max_pages`` extra allows: stopped rather than read forever."""


class NothingToWatchError(ValueError):
    """The campaign has no accepted message in the ledger: "0 of 0 final" would be a false success."""


class SmsConfigurationError(Exception):
    """A send request was refused as a whole for its configuration (a wrong URL, the sender, the
    schedule), not for its recipients: nothing was sent and the rows stay pending in the ledger.
    Retrying does not help; fix the connection or the message, then run the campaign again."""


class SmsConcurrentRunError(RuntimeError):
    """Another try of the same campaign held it for longer than ``concurrent_run_timeout``."""


class SmsBudgetExceededError(Exception):
    """A campaign would cost more than its ``max_cost`` or than the gateway's balance: nothing was
    sent. Retrying cannot make it cheaper; the message says by how much it is over."""
