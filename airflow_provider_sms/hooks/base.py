"""What every gateway hook shares: connection, HTTP session, retries, errors, masking, rate limit,
paging, dates and the gateway-neutral interface.

A gateway module subclasses :class:`SmsGatewayHook` and only describes its endpoints: each method
builds a :class:`Call` and parses the answer; everything about *how* a call travels lives here.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property, lru_cache
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import aiohttp
import msgspec
import pendulum
import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret
from requests.adapters import HTTPAdapter
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from airflow_provider_sms import __version__, phones
from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsAuthError,
    SmsGatewayError,
    SmsMalformedResponseError,
    SmsMalformedSendResponseError,
    SmsPagingError,
    SmsRateLimitError,
    SmsRedirectedSendError,
    SmsRedirectError,
    SmsTransientError,
    SmsValidationError,
)
from airflow_provider_sms.messages import (
    Contact,
    ContactResult,
    Credit,
    DeliveryStatus,
    InboundMessage,
    InvalidPhoneNumberError,
    OutboundMessage,
    SendResult,
    StatusReport,
    as_utc,
    map_status,
    normalize_phone,
)

log = logging.getLogger(__name__)

USER_AGENT = f"airflow-provider-sms/{__version__}"
DEFAULT_TIMEOUT = (10.0, 30.0)
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 120.0
# Tries of one request whose token is refused: renewed once by it, or meanwhile by another thread.
MAX_TOKEN_ROUNDS = 3
# Connections the session keeps per host; :meth:`SmsGatewayHook.use_threads` raises it.
DEFAULT_POOL_SIZE = 16
# The largest answer the hooks read (the ``max_response_bytes`` extra); a larger one is an error.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# The most pages one listing reads (the ``max_pages`` extra): a gateway that never ends is stopped.
DEFAULT_MAX_PAGES = 10_000
READ_CHUNK = 64 * 1024
# Extras whose values are secrets whatever the gateway (masked the moment they are read).
SECRET_EXTRA_WORDS = ("secret", "token", "password", "pass", "key")
# The gateways' plain timestamps: ISO date, optional time (seconds, up to 6 fraction digits), no
# zone or "Z" (UTC). Anything else (offsets, "now", intervals...) is left to pendulum.parse.
_PLAIN_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?Z?)?")
# The error code of a row rejected because its number cannot be normalised (never sent).
INVALID_PHONE = "invalid_phone"
_Item = TypeVar("_Item")
_Row = TypeVar("_Row")


@dataclass(frozen=True)
class Call:
    """One HTTP request to a gateway, described, not yet sent.

    :param creates_messages: the request makes the gateway store/send messages. Such a request is
        retried only when it provably did not reach the gateway (connect error, 429); a lost answer
        raises :class:`SmsAmbiguousSendError` instead of a silent resend.
    :param idempotent: False for requests that create something else (a contact, a group, a tag):
        they too are retried only when they provably did not reach the gateway, so a lost answer
        cannot create a second record.
    """

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | bytes | None = None  # bytes: a form body already encoded
    files: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    creates_messages: bool = False
    idempotent: bool = True
    authenticated: bool = True


@dataclass(frozen=True)
class Capabilities:
    """What a gateway can do besides sending, declared by its hook (never found out by provoking
    ``NotImplementedError``).

    :param list_contacts: its contacts of a list can be read back (:meth:`SmsGatewayHook.list_contacts`).
    :param delete_contacts: contacts can be removed (:meth:`SmsGatewayHook.delete_contacts`).
    :param find_list: a list can be found by its name (:meth:`SmsGatewayHook.find_list`).
    :param newsletter: how a newsletter reaches a list: ``"campaign"`` (one gateway-side campaign,
        TextBoost), ``"package"`` (SmsGateway24's savepaket) or ``"send"`` (a send to each
        contact of the list, through the ledger, Smstools).
    :param credit: what the account's balance (:meth:`SmsGatewayHook.get_credit`) counts:
        ``"currency"`` (money: Smstools), ``"segments"`` (SMS units: TextBoost), or None (no
        balance endpoint: SmsGateway24).
    :param contact_unsubscribed: its contacts carry an ``unsubscribed`` flag (Smstools), so an
        opted-out number can be marked in a list rather than removed from it.
    :param opt_out_list: the gateway keeps an opt-out list of its own that can be read
        (:meth:`SmsGatewayHook.iter_gateway_opt_outs`; Smstools).
    :param parallel_sends: the gateway takes several send requests of one account at once (a bulk
        send's ``max_in_flight``); False makes it send one request at a time.
    """

    list_contacts: bool = True
    delete_contacts: bool = True
    find_list: bool = True
    newsletter: str = "send"
    credit: str | None = None
    contact_unsubscribed: bool = False
    opt_out_list: bool = False
    parallel_sends: bool = True


# A page parser turns one page's payload into (items, the call for the next page or None).
PageParser = Callable[[Any, Call], "tuple[list[Any], Call | None]"]
ReportBuilder = Callable[..., StatusReport]  # SmsGatewayHook.report or .status_only


class _RateLimiter:
    """Spaces calls at least ``1 / rate`` seconds apart, across threads sharing the hook, and holds
    them all back while the gateway asked to wait (a 429's Retry-After, :meth:`pause`)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._paused_by: int | None = None  # the thread told to wait: its retry already waits
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Book the next slot and return how long to wait for it."""
        if not self.interval and self._paused_until <= time.monotonic():
            return 0.0
        with self._lock:
            now = time.monotonic()
            paused = self._paused_until if self._paused_by != threading.get_ident() else 0.0
            slot = max(now, self._next, paused)
            if self.interval:
                self._next = slot + self.interval
            return slot - now

    def pause(self, seconds: float) -> None:
        """No call starts for ``seconds`` from now: the gateway answered one thread "wait", and
        the other threads' requests would only be refused too."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._paused_by = threading.get_ident()


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:  # an HTTP date
            return max(0.0, (pendulum.parse(value, strict=False) - pendulum.now("UTC")).total_seconds())
        except Exception:
            return None


class DeadlineExceeded(Exception):
    """A request took longer than its overall deadline (a trickling or stuck answer)."""


# The deadline of the sync request running on this thread, for the connection to register with.
_ACTIVE = threading.local()


class _Deadline:
    """The overall deadline of one sync request. ``requests`` only bounds each socket read, so a
    server trickling a byte at a time would hold a request forever: at expiry a timer shuts the
    request's socket down, which ends whatever read is blocked (headers or body)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.fired = False
        self._connection: Any = None
        self._sock: Any = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _ACTIVE.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._timer.cancel()
        with self._lock:  # a timer firing now must not shut a socket the pool may hand out again
            self._connection = self._sock = None
        _ACTIVE.deadline = None

    @property
    def expired(self) -> bool:
        return self.fired or time.monotonic() >= self.expires

    def watch(self, connection: Any, sock: Any = None) -> None:
        """The connection carrying the request, and its socket once the request was sent (the
        connection forgets it when the answer says ``Connection: close``; the answer still reads it)."""
        with self._lock:
            self._connection, self._sock = connection, sock or self._sock
            if self.fired:
                self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        sock = self._sock or getattr(self._connection, "sock", None)
        if sock is not None:
            _shutdown(sock)


def _shutdown(sock: Any) -> None:
    # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would unwrap it under a reader.
    with suppress(OSError, TypeError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedConnection:
    """Registers itself with the deadline of the request it carries (see :class:`_Deadline`)."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = getattr(_ACTIVE, "deadline", None)
        if deadline is not None:
            deadline.watch(self)
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        deadline = getattr(_ACTIVE, "deadline", None)
        if deadline is not None:
            deadline.watch(self, getattr(self, "sock", None))
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections honour :class:`_Deadline` (direct and HTTP-proxied requests)."""

    _pools: ClassVar[dict[str, type]] = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = self._pools
        return manager


def _safe_url(url: str | None) -> str:
    """``url`` without userinfo, query and fragment (any of them may carry a secret)."""
    if not url:
        return "(no Location)"
    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path or "/"


def _preview(body: bytes, size: int = 80) -> str:
    text = body[:size].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > size else ""))


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Keep the objects that exist now (the imported modules of Airflow and the provider: some
    250,000, and what the caller holds) out of the garbage collector's full collections for a while,
    then give them back (``gc.freeze``/``gc.unfreeze``).

    A campaign's send and its status listings allocate millions of short-lived objects (a 2,000-row
    page is some 4,000 dicts, alive while the page is read, so they reach the oldest generation), and
    each full collection otherwise walks the whole heap again (0.2-0.5 s each: in a 200k campaign
    1.2 s of the trigger's 3.2 s of CPU and 2.9 s of the report's 4.3 s). Nothing is collected
    differently, only later: garbage among the frozen objects waits for the next collection after.
    Left alone when the collector is off or something else froze objects already (another send,
    listing or trigger of this process: the first to freeze gives back, the others only lose the
    saving)."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def collector_paused(sweep_every: int = 20) -> Iterator[Callable[[], None]]:
    """No automatic garbage collection for a while (``gc.disable``, then ``gc.enable``), and a
    ``sweep()`` to call once a batch: every ``sweep_every`` calls, one collection of what was made
    since the last.

    For loops that keep large batches of short-lived objects alive: a report holds a chunk of
    50,000 statuses while its reader builds the next, and every automatic collection of the younger
    generations walked them again (3.4 s of the collector in a 1M reconcile of 19-22 s, counted
    with ``gc.callbacks``; freezing each chunk, as before, left most of it). Objects are still
    freed by reference counting as soon as nothing refers to them; garbage in reference cycles (the
    HTTP client's: some 50 objects a page, 26,000 over a million statuses) waits for the next
    sweep, so it does not pile up over a long run. A sweep walks the batches alive at the time
    (some 0.1 s for two report chunks), hence not every batch. Left alone when the collector is off
    already (the caller's choice, or another pause in this process: the first to pause resumes;
    ``sweep()`` then does nothing)."""
    if not gc.isenabled():
        yield _left_alone
        return
    calls = itertools.count(1)

    def sweep() -> None:
        if next(calls) % sweep_every == 0:
            gc.collect(0)  # the youngest generation: everything made since the last collection

    gc.disable()
    try:
        yield sweep
    finally:
        gc.enable()


def _left_alone() -> None:
    """Nothing to sweep: the collector was off before the pause."""


def _loads(body: bytes) -> Any:
    """``json.loads(body)``, faster: msgspec reads a 2,000-row status page several times faster, to
    the same values. What it refuses (a BOM, UTF-16, NaN, escaped lone surrogates, 1e400, deep
    nesting, cut-off or non-JSON text) goes to ``json.loads``, which decides as before: same value,
    or same error."""
    try:
        return msgspec.json.decode(body)
    except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
        return json.loads(body)


def _call_key(call: Call) -> str:
    """Identifies a request (method, path and every field) to notice a listing asking for a page again."""
    return json.dumps(
        [call.method, call.path, call.params, call.json, call.data], sort_keys=True, default=str
    )


class _PageGuard:
    """Stops a listing that does not advance: the same request again, a page identical to the one
    before (the gateway ignores the page number), or more than ``max_pages`` pages."""

    def __init__(self, hook: SmsGatewayHook) -> None:
        self.hook = hook
        self.requested: set[str] = set()
        self.previous: Any = None

    def before(self, call: Call) -> None:
        key = _call_key(call)
        if key in self.requested:
            raise self._error(call, "asks for the same page again: the gateway's paging does not advance")
        if len(self.requested) >= self.hook.max_pages:
            raise self._error(call, f"has more than {self.hook.max_pages} pages (the max_pages extra)")
        self.requested.add(key)

    def after(self, call: Call, payload: Any) -> None:
        if len(self.requested) > 1 and payload == self.previous and payload not in (None, {}, []):
            raise self._error(call, "answered the same page as the page before: the gateway ignores paging")
        self.previous = payload

    def _error(self, call: Call, problem: str) -> SmsPagingError:
        params = {k: v for k, v in (call.params or {}).items() if "page" in k.lower()}
        text = f"the listing {call.method} {call.path} {problem} (at {params or call.params})"
        return SmsPagingError(self.hook.scrub(text), gateway=self.hook.gateway)


class SmsGatewayHook(BaseHook):
    """Base class of the gateway hooks.

    A gateway declares :attr:`gateway` (its connection type; its default connection is
    ``<gateway>_default``), :attr:`hook_name`, its URL, batch size, phone format, capabilities and
    :attr:`status_map`.

    :param sms_conn_id: the Airflow connection of the gateway (default ``<gateway>_default``).
    :param timeout: overrides the connection's ``timeout`` extra: seconds, or (connect, read).
    :param max_attempts: overrides the connection's ``max_attempts`` extra (1 disables retries).
    """

    conn_name_attr = "sms_conn_id"
    gateway: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    # Appended to a connection host that has no path of its own (e.g. "/getdata/").
    default_path: ClassVar[str] = ""
    # Largest number of messages one send request carries.
    max_batch_size: ClassVar[int] = 1
    # E.164 with "+" (SmsGateway24) or digits only (Smstools, TextBoost) on the wire.
    phone_with_plus: ClassVar[bool] = False
    capabilities: ClassVar[Capabilities] = Capabilities()
    # The gateway's status words or codes (case-insensitive) to DeliveryStatus; others are unknown.
    status_map: ClassVar[Mapping[str, DeliveryStatus]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A gateway's connection type is its :attr:`gateway`, its default connection ``<gateway>_default``."""
        super().__init_subclass__(**kwargs)
        if cls.gateway:
            cls.conn_type = cls.__dict__.get("conn_type", cls.gateway)
            cls.default_conn_name = cls.__dict__.get("default_conn_name", f"{cls.gateway}_default")

    def __init__(
        self,
        sms_conn_id: str | None = None,
        *,
        timeout: float | tuple[float, float] | None = None,
        max_attempts: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sms_conn_id = sms_conn_id or self.default_conn_name
        self._timeout_override = timeout
        self._max_attempts_override = max_attempts
        self._secrets: set[str] = set()
        self._token: str | None = None
        # One thread at a time fetches a token; the others wait for it rather than fetch their own.
        self._token_lock = threading.RLock()
        self._pool_size = DEFAULT_POOL_SIZE

    # ---------------------------------------------------------------------------------------------
    # Connection

    @cached_property
    def connection(self):
        """The Airflow connection, with its secrets registered for masking."""
        return self._register(self.get_connection(self.sms_conn_id))

    async def _aload_connection(self) -> None:
        """Read the connection with the async API (for triggers), unless already loaded."""
        if "connection" not in self.__dict__:
            conn = await self.aget_connection(self.sms_conn_id)
            self.__dict__["connection"] = self._register(conn)

    def _register(self, conn):
        for value in (conn.password, *self._secret_extras(conn.extra_dejson)):
            self._remember_secret(value)
        return conn

    @staticmethod
    def _secret_extras(extras: dict[str, Any]) -> Iterator[str]:
        for name, value in extras.items():
            if isinstance(value, str) and any(word in name.lower() for word in SECRET_EXTRA_WORDS):
                yield value

    def _remember_secret(self, value: str | None) -> None:
        """Mask ``value`` in Airflow's logs and scrub it from our exception texts."""
        if value:
            mask_secret(value)
            self._secrets.add(str(value))

    def scrub(self, text: str) -> str:
        """Remove every known secret from ``text`` (for exception messages and log lines)."""
        for secret in tuple(self._secrets):  # a copy: another thread may be adding a new token
            text = text.replace(secret, "***")
        return text

    @cached_property
    def extras(self) -> dict[str, Any]:
        return self.connection.extra_dejson

    def extra(self, name: str, default: Any = None) -> Any:
        """A connection extra; empty strings count as unset (the UI stores them for blank fields)."""
        value = self.extras.get(name)
        return default if value in (None, "") else value

    @cached_property
    def base_url(self) -> str:
        host = (self.connection.host or "").strip()
        if not host:
            return self.default_base_url.rstrip("/")
        if "://" not in host:
            host = f"{self.connection.schema or 'https'}://{host}"
        scheme, rest = host.split("://", 1)
        authority, _, path = rest.partition("/")
        if self.connection.port and ":" not in authority:
            authority = f"{authority}:{self.connection.port}"
        path = path.strip("/") or self.default_path.strip("/")
        userinfo = authority.rpartition("@")[0]
        if userinfo:  # a password in the host URL is a secret like the password field
            self._remember_secret(userinfo.partition(":")[2])
        return f"{scheme}://{authority}" + (f"/{path}" if path else "")

    @property
    def display_url(self) -> str:
        """:attr:`base_url` without any userinfo, for messages and lineage."""
        scheme, _, rest = self.base_url.partition("://")
        authority, slash, path = rest.partition("/")
        return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"

    @cached_property
    def timezone(self) -> str:
        return self.extra("timezone", "UTC")

    @cached_property
    def timeout(self) -> tuple[float, float]:
        value = self._timeout_override if self._timeout_override is not None else self.extra("timeout")
        if value is None:
            return DEFAULT_TIMEOUT
        if isinstance(value, (list, tuple)):
            return float(value[0]), float(value[1])
        return min(float(value), DEFAULT_TIMEOUT[0]), float(value)

    @cached_property
    def deadline(self) -> float:
        """Seconds a whole request may take, answer read included (the ``deadline`` extra; default
        the connect plus the read timeout): a socket timeout alone bounds each read, not a request."""
        value = self.extra("deadline")
        return float(value) if value is not None else sum(self.timeout)

    @cached_property
    def max_response_bytes(self) -> int:
        """The largest answer read (the ``max_response_bytes`` extra, default 32 MiB)."""
        return int(self.extra("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES))

    @cached_property
    def max_pages(self) -> int:
        """The most pages one listing reads (the ``max_pages`` extra, default 10,000)."""
        return max(1, int(self.extra("max_pages", DEFAULT_MAX_PAGES)))

    @cached_property
    def max_attempts(self) -> int:
        value = self._max_attempts_override or self.extra("max_attempts", DEFAULT_MAX_ATTEMPTS)
        return max(1, int(value))

    @cached_property
    def batch_size(self) -> int:
        """Messages per send request: the gateway's maximum unless the ``batch_size`` extra lowers it."""
        return max(1, min(int(self.extra("batch_size", self.max_batch_size)), self.max_batch_size))

    @cached_property
    def _limiter(self) -> _RateLimiter:
        rate = self.extra("max_requests_per_second")
        return _RateLimiter(float(rate) if rate else None)

    # ---------------------------------------------------------------------------------------------
    # Sync transport

    @cached_property
    def session(self) -> requests.Session:
        """A pooled session, shared by the threads using the hook (a connection each, see
        :meth:`use_threads`); retries are ours (tenacity), so the adapter never retries by itself."""
        session = requests.Session()
        adapter = _DeadlineAdapter(pool_connections=4, pool_maxsize=self._pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        return session

    def use_threads(self, threads: int) -> None:
        """Get the hook ready to be called from ``threads`` threads at once (a bulk send's requests
        in flight): its session keeps a connection for each, plus one for a look-up, and what it
        reads lazily (connection, session, rate limiter) is read now, not raced for by the threads."""
        if threads + 1 > self._pool_size:
            self._pool_size = threads + 1
            self.close()  # a session made earlier has the smaller pool
        for name in ("connection", "base_url", "timeout", "deadline", "max_attempts", "_limiter", "session"):
            getattr(self, name)

    def close(self) -> None:
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def request(self, call: Call) -> Any:
        """Send ``call`` with retries and return the parsed payload, or raise a typed error."""
        return self._retrying(call, Retrying)(self._request_once_with_auth, call)

    def _request_once_with_auth(self, call: Call) -> Any:
        if not call.authenticated:
            return self._request_once(call)
        self._ensure_token()
        renewed = False
        for _ in range(MAX_TOKEN_ROUNDS):
            used = self._token
            try:
                return self._request_once(call)
            except SmsAuthError:
                # A token that expired mid-run is fetched again; static credentials are not retried.
                if self._token_call() is None:
                    raise
                with self._token_lock:
                    if self._token == used:  # nobody renewed it since it was refused
                        if renewed:  # a token fetched for this request was refused: wrong credentials
                            raise
                        self._token = None
                        self._ensure_token()
                        renewed = True
                    # else another thread sharing the hook renewed it meanwhile: use that one
        return self._request_once(call)

    def _ensure_token(self) -> str | None:
        """The session token, fetched if there is none yet (None for static credentials). Threads
        sharing the hook wait for the one fetching it instead of each fetching their own."""
        if self._token is not None or self._token_call() is None:
            return self._token
        with self._token_lock:
            if self._token is None:
                with _not_sent_yet():
                    self._accept_token(self._request_once(self._token_call()))
            return self._token

    def _request_once(self, call: Call) -> Any:
        self._throttle()
        call = self._authorize(call) if call.authenticated else call
        url = self._url(call.path)
        with _Deadline(self.deadline) as deadline:
            try:
                # Never follow a redirect: requests would carry the credentials to the other host.
                response = self.session.request(
                    call.method,
                    url,
                    params=call.params,
                    json=call.json,
                    data=call.data,
                    files=call.files,
                    headers=call.headers or None,
                    timeout=self.timeout,
                    stream=True,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                if deadline.expired:
                    raise self._deadline_error(call) from None
                raise self._transport_error(call, exc, sent=not _never_sent(exc)) from None
            try:
                body = self._read_body(call, response, deadline)
            finally:
                response.close()
        return self._handle(call, response.status_code, response.headers, body)

    def _read_body(self, call: Call, response: requests.Response, deadline: _Deadline) -> bytes:
        """The answer's body, read in chunks within the deadline and the size cap."""
        self._check_length(call, response.headers)
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(READ_CHUNK):
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise self._too_large(call)
                if deadline.expired:
                    raise self._deadline_error(call)
                chunks.append(chunk)
        except requests.RequestException as exc:
            if deadline.expired:
                raise self._deadline_error(call) from None
            raise self.malformed(call, f"the answer was cut off ({type(exc).__name__})") from None
        if deadline.fired:  # the socket was shut down under the read: what came is not the whole answer
            raise self._deadline_error(call)
        return b"".join(chunks)

    def _check_length(self, call: Call, headers: Any) -> None:
        try:
            length = int(headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > self.max_response_bytes:
            raise self._too_large(call)

    def _too_large(self, call: Call) -> SmsMalformedResponseError:
        return self.malformed(
            call, f"the answer is larger than {self.max_response_bytes} bytes (max_response_bytes)"
        )

    def _deadline_error(self, call: Call) -> SmsGatewayError:
        """The request ran out of time after it left: a send may have been stored (ambiguous)."""
        exc = DeadlineExceeded(f"no complete answer within the {self.deadline:g} s deadline")
        return self._transport_error(call, exc, sent=True)

    def _throttle(self) -> None:
        wait = self._limiter.reserve()
        if wait > 0:
            time.sleep(wait)

    # ---------------------------------------------------------------------------------------------
    # Async transport (triggers): same calls, same parsing, aiohttp instead of requests.

    async def arequest(self, call: Call) -> Any:
        """Async :meth:`request`; reads the connection with the async API."""
        await self._aload_connection()
        retrying = self._retrying(call, AsyncRetrying)
        async for attempt in retrying:
            with attempt:
                return await self._arequest_once_with_auth(call)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _arequest_once_with_auth(self, call: Call) -> Any:
        if call.authenticated:
            await self._aensure_token()
        try:
            return await self._arequest_once(call)
        except SmsAuthError:
            if not call.authenticated or self._token_call() is None:
                raise
            self._token = None
            await self._aensure_token()
            return await self._arequest_once(call)

    async def _aensure_token(self) -> None:
        token_call = self._token_call()
        if token_call is not None and self._token is None:
            with _not_sent_yet():
                self._accept_token(await self._arequest_once(token_call))

    async def _arequest_once(self, call: Call) -> Any:
        wait = self._limiter.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
        call = self._authorize(call) if call.authenticated else call
        connect, read = self.timeout
        # total bounds the whole request, answer included (sock_read only bounds each read).
        timeout = aiohttp.ClientTimeout(total=self.deadline, sock_connect=connect, sock_read=read)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **call.headers}
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, headers=headers) as session,
                session.request(
                    call.method,
                    self._url(call.path),
                    params=call.params,
                    json=call.json,
                    data=call.data,
                    allow_redirects=False,  # as the sync transport: credentials stay with the gateway
                ) as response,
            ):
                self._check_length(call, response.headers)
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(READ_CHUNK):
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise self._too_large(call)
                    chunks.append(chunk)
                return self._handle(call, response.status, response.headers, b"".join(chunks))
        except aiohttp.ClientPayloadError as exc:
            raise self.malformed(call, f"the answer was cut off ({type(exc).__name__})") from None
        except asyncio.TimeoutError:
            raise self._deadline_error(call) from None
        except aiohttp.ClientError as exc:
            never_sent = isinstance(exc, aiohttp.ClientConnectorError)
            raise self._transport_error(call, exc, sent=not never_sent) from None

    # ---------------------------------------------------------------------------------------------
    # Shared request logic

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _retrying(self, call: Call, retrying_class: type[Retrying] | type[AsyncRetrying]):
        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, SmsTransientError):
                return False
            return not exc.request_sent or (call.idempotent and not call.creates_messages)

        backoff = wait_exponential(multiplier=DEFAULT_BACKOFF, max=MAX_BACKOFF) + wait_random(
            0, DEFAULT_BACKOFF
        )

        def wait(state) -> float:
            # Honour Retry-After when the gateway sent one; otherwise back off with jitter.
            retry_after = getattr(state.outcome.exception(), "retry_after", None)
            if retry_after is None:
                return backoff(state)
            seconds = min(float(retry_after), MAX_RETRY_AFTER)
            self._limiter.pause(seconds)  # the hook's other threads wait as well
            return seconds

        return retrying_class(
            retry=retry_if_exception(should_retry),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            reraise=True,
            before_sleep=lambda state: self.log.warning(
                "%s %s failed (%s); attempt %d of %d",
                call.method,
                call.path,
                state.outcome.exception(),
                state.attempt_number,
                self.max_attempts,
            ),
        )

    def _transport_error(self, call: Call, exc: Exception, *, sent: bool) -> SmsGatewayError:
        text = self.scrub(f"{type(exc).__name__} on {call.method} {call.path}: {exc}")
        if sent and call.creates_messages:
            return SmsAmbiguousSendError(
                f"the answer to a send request was lost, the gateway may have stored it ({text})",
                gateway=self.gateway,
            )
        return SmsTransientError(text, gateway=self.gateway, request_sent=sent)

    def _handle(self, call: Call, status: int, headers: Any, body: bytes) -> Any:
        if 300 <= status < 400:
            raise self._redirect_error(call, status, headers.get("Location"))
        try:
            payload = _loads(body) if body else None
        except ValueError:
            if status < 300:  # every gateway answers JSON: an HTML page or cut-off JSON is not an answer
                error = self.malformed(call, f"not JSON: {_preview(body)}")
                error.status_code = status
                raise error from None
            payload = body.decode("utf-8", "replace")
        try:
            self._raise_for_envelope(call, status, payload)
            if status >= 400:
                self._raise_for_status(call, status, payload, headers)
        except SmsGatewayError as exc:
            exc.message = self.scrub(exc.message)
            exc.args = (exc.message,)
            exc.gateway = exc.gateway or self.gateway
            exc.status_code = exc.status_code or status
            raise
        return payload

    def _raise_for_status(self, call: Call, status: int, payload: Any, headers: Any) -> None:
        """Map an HTTP error status that the gateway's envelope did not explain to a typed error."""
        text, where = self._error_text(payload), f"HTTP {status} on {call.method} {call.path}"
        message = text or where
        if status >= 500 and text:  # keep the endpoint: a proxy's error page does not say which call failed
            message = f"{where}: {text}"
        if status == 429:
            retry_after = _parse_retry_after(headers.get("Retry-After"))
            raise SmsRateLimitError(message, retry_after=retry_after, status_code=status)
        if status >= 500:
            if call.creates_messages:
                raise SmsAmbiguousSendError(
                    f"HTTP {status} answering a send request; the gateway may have stored it: {message}",
                    status_code=status,
                )
            raise SmsTransientError(message, status_code=status)
        if status in (401, 403):
            raise SmsAuthError(message, status_code=status)
        raise SmsValidationError(message, status_code=status)

    def _redirect_error(self, call: Call, status: int, location: str | None) -> SmsRedirectError:
        """A 3xx is never followed (the credentials would go along); a send that got one reached a
        server that may have stored it, so it is ambiguous."""
        target = self.scrub(_safe_url(location))
        text = (
            f"HTTP {status} on {call.method} {call.path} redirects to {target}; redirects are not "
            f"followed (they would carry the credentials): set the connection's host to the right URL"
        )
        cls = SmsRedirectedSendError if call.creates_messages else SmsRedirectError
        return cls(self.scrub(text), location=target, gateway=self.gateway, status_code=status)

    def malformed(self, call: Call, problem: str) -> SmsMalformedResponseError:
        """The error for an answer to ``call`` that cannot be read; for a send, an ambiguous one."""
        cls = SmsMalformedSendResponseError if call.creates_messages else SmsMalformedResponseError
        return cls(
            self.scrub(f"unreadable answer to {call.method} {call.path}: {problem}"), gateway=self.gateway
        )

    def expect_object(self, call: Call, payload: Any, *keys: str) -> dict[str, Any]:
        """``payload`` if it is a JSON object with a value for each of ``keys``, else a malformed error."""
        if not isinstance(payload, dict):
            raise self.malformed(call, f"expected a JSON object, got {type(payload).__name__}")
        missing = [key for key in keys if payload.get(key) in (None, "")]
        if missing:
            raise self.malformed(call, f"no {', '.join(missing)} in the answer")
        return payload

    def request_object(self, call: Call, *keys: str) -> dict[str, Any]:
        """:meth:`request` for an answer that must be a JSON object with ``keys`` (see :meth:`expect_object`)."""
        return self.expect_object(call, self.request(call), *keys)

    @contextmanager
    def parsing(self, call: Call) -> Iterator[None]:
        """Turn the bare errors of reading an unexpected answer (a list where an object was due, a
        missing field) into a malformed-answer error naming the gateway and the endpoint."""
        try:
            yield
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise self.malformed(call, f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _error_text(payload: Any) -> str | None:
        if isinstance(payload, dict):
            for key in ("errorMsg", "message", "error_description"):
                if payload.get(key):
                    return str(payload[key])
        if isinstance(payload, str) and payload.strip():
            return payload.strip()[:500]
        return None

    # ---------------------------------------------------------------------------------------------
    # What a gateway describes (override as needed)

    def _raise_for_envelope(self, call: Call, status: int, payload: Any) -> None:
        """Raise a typed error if ``payload`` is the gateway's error envelope (also on HTTP 200)."""

    def _authorize(self, call: Call) -> Call:
        """Return ``call`` with credentials attached (headers, fields or token)."""
        return call

    def _token_call(self) -> Call | None:
        """The call that obtains a session token, for gateways that use one (None: static credentials)."""
        return None

    def _accept_token(self, payload: Any) -> None:
        """Keep the token from the answer to :meth:`_token_call`."""

    def _test_call(self) -> Call:
        """A cheap authenticated call for :meth:`test_connection`."""
        raise NotImplementedError

    def _status_listing(self, since: datetime | None, build: ReportBuilder) -> tuple[Call, PageParser]:
        """The list endpoint that reports message statuses, and how to read its pages: each listed
        message through ``build`` (:meth:`report`, or :meth:`status_only`)."""
        raise NotImplementedError

    def _reply_listing(self, since: datetime | None) -> tuple[Call, PageParser]:
        """The list endpoint of received messages (from ``since``, UTC, where it can filter), and how
        to read its pages into :class:`InboundMessage` items."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------
    # Paging

    def paginate(self, call: Call, parse_page: PageParser) -> Iterator[Any]:
        """Lazily yield the items of every page, starting from ``call``."""
        guard = _PageGuard(self)
        next_call: Call | None = call
        while next_call is not None:
            guard.before(next_call)
            payload = self.request(next_call)
            guard.after(next_call, payload)
            with self.parsing(next_call):
                items, next_call = parse_page(payload, next_call)
            yield from items

    async def apaginate(self, call: Call, parse_page: PageParser) -> AsyncIterator[Any]:
        """Async :meth:`paginate`."""
        guard = _PageGuard(self)
        next_call: Call | None = call
        while next_call is not None:
            guard.before(next_call)
            payload = await self.arequest(next_call)
            guard.after(next_call, payload)
            with self.parsing(next_call):
                items, next_call = parse_page(payload, next_call)
            for item in items:
                yield item

    @staticmethod
    def with_params(call: Call, **params: Any) -> Call:
        """``call`` with its query parameters updated (for the next page)."""
        return replace(call, params={**(call.params or {}), **params})

    # ---------------------------------------------------------------------------------------------
    # Phones and dates on the wire

    def wire_phone(self, raw: Any) -> str:
        """Any readable phone number in the gateway's format (raises ``InvalidPhoneNumberError``)."""
        return self.to_wire_phone(normalize_phone(raw, self.extra("default_region")))

    def to_wire_phone(self, e164: str) -> str:
        """The gateway's format of an E.164 number."""
        return e164 if self.phone_with_plus else e164.lstrip("+")

    @staticmethod
    def from_wire_phone(raw: Any) -> str:
        """E.164 from a gateway's number (with or without "+"); unparsable values are returned as given."""
        text = str(raw or "").strip()
        if not text:
            return text
        try:
            return normalize_phone(text if text.startswith("+") else f"+{text}")
        except ValueError:
            return text

    @staticmethod
    def from_wire_recipient(raw: Any) -> str | None:
        """The recipient of a message a gateway lists (status listings, thousands per page) in
        E.164, None when empty.

        Gateways list the numbers they accepted as international digits, with or without "+":
        8 to 15 ASCII digits starting with a calling code, no trunk ``0`` after it and nothing
        phonenumbers' parse would strip or rewrite (:func:`phones.as_written`) just get
        their "+", without phonenumbers (about 100 µs a number). For every number phonenumbers
        holds valid that is what :meth:`from_wire_phone` returns too; they differ only for digits
        phonenumbers rejects (kept as given there, "+"-prefixed here). Anything else (spaces,
        ``00``, short or national numbers, San Marino's or Argentina's rewritten forms) goes
        through :meth:`from_wire_phone`.
        """
        if raw.__class__ is not str and isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if isinstance(raw, str):
            digits = raw[1:] if raw[:1] == "+" else raw
            if 8 <= len(digits) <= 15 and digits.isascii() and digits.isdigit():
                plus = phones.as_written(digits)
                if plus is not None:
                    return plus
        return SmsGatewayHook.from_wire_phone(raw) or None

    def format_time(self, value: datetime, fmt: str = "YYYY-MM-DD HH:mm:ss") -> str:
        """``value`` in the connection's timezone (naive values are taken as UTC), formatted for the wire."""
        return as_utc(value).in_timezone(self.timezone).format(fmt)

    def parse_time(self, value: Any) -> datetime | None:
        """A gateway timestamp as an aware datetime; naive texts are in the connection's timezone.

        Plain ISO texts (``2026-05-29 17:21``, ``...T17:21:27.123456Z``) take a fast path with the
        same result as ``pendulum.parse`` (see :func:`_plain_time`), remembered per zone and text
        (:data:`_TIMES`, bounded); the rest goes to pendulum.
        """
        if value.__class__ is str:  # a listing's texts: thousands of rows share a second
            if not value:
                return None
            try:
                zone = self.timezone
                moment = _TIMES.get(zone, _NO_TIMES).get(value)
                if moment is not None:
                    return moment
                moment = _plain_time(value, zone)
            except Exception:  # an unknown or unhashable zone: pendulum decides, as below
                moment = None
            if moment is not None:
                _remember_time(zone, value, moment)
                return moment
        elif value is None or value == "":
            return None
        if isinstance(value, dict):  # PHP DateTime JSON: {"date", "timezone_type", "timezone"}
            text, tz = str(value["date"]), value.get("timezone") or self.timezone
            return _plain_time_or_none(text, tz) or pendulum.parse(text, tz=tz)
        text = str(value)
        try:
            return _plain_time_or_none(text, self.timezone) or pendulum.parse(text, tz=self.timezone)
        except Exception:
            return None

    # ---------------------------------------------------------------------------------------------
    # The gateway-neutral interface

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send at most :attr:`batch_size` messages in as few requests as the gateway allows.

        Returns one result per message, in order. Raises :class:`SmsAmbiguousSendError` when the
        answer was lost: the caller must look the messages up (:meth:`find_sent`) before resending.
        """
        raise NotImplementedError

    def send_messages(self, messages: Iterable[OutboundMessage]) -> list[SendResult]:
        """Send ``messages`` in batches of :attr:`batch_size`; one result per message, in order."""
        results: list[SendResult] = []
        for batch in chunked(messages, self.batch_size):
            results.extend(self.send_batch(batch))
        return results

    def find_sent(
        self, messages: Sequence[OutboundMessage], since: datetime | None = None
    ) -> dict[str, StatusReport]:
        """Look up which of ``messages`` (by their ``key``) the gateway already holds.

        Used after an ambiguous send: what is found was sent and must not be sent again.
        """
        raise NotImplementedError

    def iter_statuses(self, since: datetime | None = None) -> Iterator[StatusReport]:
        """Every message the gateway reports (created after ``since`` where it can filter), paged."""
        return self._status_pages(since, self.report)

    async def aiter_statuses(self, since: datetime | None = None) -> AsyncIterator[StatusReport]:
        """Async :meth:`iter_statuses`."""
        async for report in self._astatus_pages(since, self.report):
            yield report

    def _status_pages(self, since: datetime | None, build: ReportBuilder) -> Iterator[StatusReport]:
        call, parse_page = self._status_listing(since, build)
        return self.paginate(call, parse_page)

    async def _astatus_pages(
        self, since: datetime | None, build: ReportBuilder
    ) -> AsyncIterator[StatusReport]:
        await self._aload_connection()
        call, parse_page = self._status_listing(since, build)
        async for report in self.apaginate(call, parse_page):
            yield report

    def get_statuses(
        self, message_ids: Iterable[str], since: datetime | None = None
    ) -> dict[str, StatusReport]:
        """Statuses of ``message_ids`` from the bulk list endpoint (not one request per id).

        Ids the gateway does not list are absent from the result.
        """
        return self._find(_Wanted(message_ids, _whole_report), since, self.report)

    async def aget_statuses(
        self, message_ids: Iterable[str], since: datetime | None = None
    ) -> dict[str, StatusReport]:
        """Async :meth:`get_statuses`, for triggers."""
        return await self._afind(_Wanted(message_ids, _whole_report), since, self.report)

    def get_status_values(
        self, message_ids: Iterable[str], since: datetime | None = None
    ) -> dict[str, DeliveryStatus]:
        """:meth:`get_statuses` keeping only each normalised status: what a sensor watching a million
        messages needs (the whole reports would hold every body and date in memory). The listing is
        read through :meth:`status_only`: no recipient, body or update time is parsed."""
        return self._find(_Wanted(message_ids, _status_of), since, self.status_only)

    async def aget_status_values(
        self, message_ids: Iterable[str], since: datetime | None = None
    ) -> dict[str, DeliveryStatus]:
        """Async :meth:`get_status_values`, for triggers."""
        return await self._afind(_Wanted(message_ids, _status_of), since, self.status_only)

    def _find(self, wanted: _Wanted, since: datetime | None, build: ReportBuilder) -> dict[str, Any]:
        if wanted.ids:
            with long_lived_frozen():
                for report in self._status_pages(since, build):
                    if wanted.take(report):
                        break
        return wanted.found

    async def _afind(self, wanted: _Wanted, since: datetime | None, build: ReportBuilder) -> dict[str, Any]:
        if wanted.ids:
            with long_lived_frozen():  # across awaits: see long_lived_frozen for other freezers
                async for report in self._astatus_pages(since, build):
                    if wanted.take(report):
                        break
        return wanted.found

    def upsert_contacts(self, contacts: Sequence[Contact], list_id: str) -> list[ContactResult]:
        """Create contacts without ``contact_id`` and update those with one, in ``list_id``."""
        raise NotImplementedError

    def delete_contacts(self, contact_ids: Iterable[str], list_id: str) -> None:
        """Remove contacts from the gateway."""
        raise NotImplementedError

    def list_contacts(self, list_id: str) -> Iterator[Contact]:
        """Every contact of ``list_id``, paged lazily."""
        raise NotImplementedError

    def create_list(self, name: str) -> str:
        """Create a contact list (group / tag) and return its id."""
        raise NotImplementedError

    def find_list(self, name: str) -> str | None:
        """The id of the contact list called ``name``, or None (if the gateway can list them)."""
        raise NotImplementedError

    def get_credit(self) -> Credit:
        """What is left on the account (where :attr:`Capabilities.credit` says the gateway tells)."""
        raise NotImplementedError

    def find_newsletter(self, title: str, body: str, since: datetime) -> str | None:
        """The id of a newsletter titled ``title`` with ``body`` that the gateway created since
        ``since`` (after its creation's answer was lost), or None: not found, or the gateway cannot
        list its newsletters (this default)."""
        return None

    def iter_replies(self, since: datetime | None = None) -> Iterator[InboundMessage]:
        """Every inbound message the gateway lists (replies, and any other text to our number),
        received at or after ``since`` (naive: UTC), paged lazily.

        Where the gateway cannot filter by date the hook still reads only what it must and leaves
        older messages out; a message whose time cannot be read is kept (``received_at`` None).
        Reading again yields the same ``message_id`` for the same message: de-duplicate by it.
        """
        start = None if since is None else as_utc(since)
        call, parse_page = self._reply_listing(start)
        for reply in self.paginate(call, parse_page):
            if start is None or reply.received_at is None or reply.received_at >= start:
                yield reply

    def iter_gateway_opt_outs(self) -> Iterator[tuple[str, datetime | None]]:
        """``(phone in E.164, opted out since)`` for every number on the gateway's own opt-out
        list, paged; only where :attr:`Capabilities.opt_out_list` says the gateway keeps one."""
        raise NotImplementedError(
            f"{self.hook_name} keeps no opt-out list that can be read (capabilities.opt_out_list is False)"
        )

    # ---------------------------------------------------------------------------------------------
    # What the gateways' batch and contact methods share

    def report(
        self,
        message_id: Any,
        raw_status: Any,
        *,
        status: DeliveryStatus | None = None,
        recipient: Any = None,
        key: Any = None,
        body: str | None = None,
        created: Any = None,
        updated: Any = None,
    ) -> StatusReport:
        """A message as a gateway lists it, from the wire values: the raw status through
        :attr:`status_map` (unless ``status`` is given), the recipient in E.164, a blank key as
        None, the times parsed (:meth:`parse_time`)."""
        if status is None:
            status = self.map_status(raw_status)
        return _status_report(
            {
                "message_id": str(message_id),
                "status": status,
                "raw_status": None if raw_status is None else str(raw_status),
                "recipient": self.from_wire_recipient(recipient),
                "key": None if key is None or key == "" else str(key),
                "body": body,
                "created_at": self.parse_time(created),
                "updated_at": self.parse_time(updated),
            }
        )

    def status_only(
        self,
        message_id: Any,
        raw_status: Any,
        *,
        status: DeliveryStatus | None = None,
        recipient: Any = None,
        key: Any = None,
        body: str | None = None,
        created: Any = None,
        updated: Any = None,
    ) -> StatusReport:
        """:meth:`report` (same arguments) keeping what a status look-up reads: the id, the status and
        the creation time (a listing's ``since`` is judged by it). The recipient, key, body and update
        time are left None, unread: normalising a recipient is most of a report's cost. Its body and
        signature are its own: built on :meth:`report`, or taking the unread ones as ``**kwargs``, a
        status cost 10-40 % more."""
        if status is None:
            status = self.map_status(raw_status)
        return _status_report(
            {
                "message_id": str(message_id),
                "status": status,
                "raw_status": None if raw_status is None else str(raw_status),
                "recipient": None,
                "key": None,
                "body": None,
                "created_at": self.parse_time(created),
                "updated_at": None,
            }
        )

    def map_status(self, raw_status: Any) -> DeliveryStatus:
        """:func:`messages.map_status` through :attr:`status_map`, remembered per raw text (a
        listing repeats a handful of them; at most :data:`_CACHE_SIZE`, then forgotten)."""
        table = self.status_map
        cache = self.__dict__.get("_statuses")
        if cache is None or cache[0] is not table:
            cache = self.__dict__["_statuses"] = (table, {})
        known = cache[1]
        if raw_status.__class__ is str:
            status = known.get(raw_status)
            if status is None:
                if len(known) >= _CACHE_SIZE:
                    known.clear()
                status = known[raw_status] = map_status(raw_status, table)
            return status
        return map_status(raw_status, table)

    def inbound(
        self,
        message_id: Any,
        sender: Any,
        text: Any,
        received: Any,
        recipient: Any = None,
        *,
        recipient_is_phone: bool = True,
    ) -> InboundMessage:
        """A received message from the wire values: the sender (and the recipient, when it is a
        number) in E.164 where it can be normalised (:meth:`inbound_phone`), else as given; the
        time read leniently (:meth:`received_time`). A row without an id gets one derived from
        what it says (``sha256:`` and 32 hex digits of its sender, time and text), the same on
        every read."""
        sender_text = self.inbound_phone(sender)
        if recipient in (None, ""):
            recipient_text = None
        else:
            recipient_text = self.inbound_phone(recipient) if recipient_is_phone else str(recipient)
        body = "" if text is None else str(text)
        if message_id in (None, ""):
            seen = json.dumps([sender_text, received, body], default=str, ensure_ascii=False)
            message_id = "sha256:" + hashlib.sha256(seen.encode()).hexdigest()[:32]
        return InboundMessage(
            gateway=self.gateway,
            message_id=str(message_id),
            sender=sender_text,
            recipient=recipient_text,
            text=body,
            received_at=self.received_time(received),
        )

    def inbound_phone(self, raw: Any) -> str:
        """A number as a phone shows it to us, in E.164: international digits with or without "+",
        ``00`` and, with the ``default_region`` extra, national numbers; anything else (a sender
        id, a short code) as given, and blank as ``""``."""
        text = self.from_wire_phone(raw)
        if not text or text.startswith("+"):
            return text
        try:
            return normalize_phone(text, self.extra("default_region"))
        except InvalidPhoneNumberError:
            return text

    def received_time(self, value: Any) -> datetime | None:
        """When a message was received, read leniently: epoch seconds (a number, or a text of 9 or
        10 digits) in UTC, texts and PHP dates as :meth:`parse_time`; a time that cannot be read
        (``0000-00-00 00:00:00``, ``yesterday``) is None rather than an error, so one odd row does
        not hide the others."""
        if isinstance(value, bool):
            return None
        if isinstance(value, str) and value.strip().isdigit() and 9 <= len(value.strip()) <= 10:
            value = int(value.strip())
        try:
            if isinstance(value, (int, float)):
                return pendulum.from_timestamp(value, tz="UTC")
            return self.parse_time(value)
        except Exception:
            return None

    def wire_numbers(self, messages: Sequence[OutboundMessage], results: list[Any]) -> list[tuple[int, str]]:
        """``(index, number in the gateway's format)`` of each message of a batch; a number that
        cannot be normalised is never sent, its result a reject (``invalid_phone``)."""
        return self.phone_rows(
            messages,
            lambda m: self.wire_phone(m.to),
            lambda m, error: SendResult.rejected(m, error, "invalid_phone"),
            results,
        )

    @staticmethod
    def phone_rows(
        items: Sequence[_Item],
        build: Callable[[_Item], _Row],
        reject: Callable[[_Item, str], Any],
        results: list[Any],
    ) -> list[tuple[int, _Row]]:
        """Phone pre-validation of a batch: ``(index, build(item))`` for every item; an item whose
        number ``build`` cannot normalise (``InvalidPhoneNumberError``) is left out (never sent)
        and gets ``reject(item, error text)`` at its index of ``results``."""
        rows: list[tuple[int, _Row]] = []
        for index, item in enumerate(items):
            try:
                rows.append((index, build(item)))
            except InvalidPhoneNumberError as exc:
                results[index] = reject(item, str(exc))
        return rows

    @staticmethod
    def invalid_contact(contact: Contact, error: str) -> ContactResult:
        """The reject of a contact whose number cannot be normalised."""
        return ContactResult(contact, accepted=False, error=error, error_code=INVALID_PHONE)

    @classmethod
    def write_contact(
        cls,
        contact: Contact,
        write: Callable[[], Any],
        error_code: Callable[[SmsValidationError], str | None] | None = None,
    ) -> ContactResult:
        """One contact written by one request: accepted with the id ``write`` returns, or rejected
        for an invalid number or for the gateway's refusal (``SmsValidationError``, its ``code`` as
        the error code unless ``error_code`` says otherwise). Any other error is raised."""
        try:
            contact_id = write()
        except InvalidPhoneNumberError as exc:
            return cls.invalid_contact(contact, str(exc))
        except SmsValidationError as exc:
            code = error_code(exc) if error_code else None if exc.code is None else str(exc.code)
            return ContactResult(contact, accepted=False, error=exc.message, error_code=code)
        return ContactResult(contact, accepted=True, contact_id=contact_id)

    @staticmethod
    def delete_each(ids: Iterable[str], delete: Callable[[str], Any]) -> None:
        """One delete request per id (for gateways without a batch delete); one already gone
        (HTTP 404) counts as deleted."""
        for item_id in ids:
            try:
                delete(item_id)
            except SmsValidationError as exc:
                if exc.status_code != 404:
                    raise

    def test_connection(self) -> tuple[bool, str]:
        """For the UI's Test button: one cheap authenticated call."""
        try:
            self.request(self._test_call())
        except Exception as exc:
            return False, self.scrub(str(exc))
        return True, f"Connection to {self.gateway} at {self.display_url} works"


@contextmanager
def _not_sent_yet() -> Iterator[None]:
    """Failures while obtaining a token happen before the real request leaves: safe to retry."""
    try:
        yield
    except SmsTransientError as exc:
        exc.request_sent = False
        raise


# Parsed plain texts by zone, then text: what parse_time returned for them (the same objects as
# _plain_time's cache). At most _CACHE_SIZE texts a zone and _CACHE_SIZE zones, then forgotten.
_CACHE_SIZE = 4096
_TIMES: dict[str, dict[str, pendulum.DateTime]] = {}
_NO_TIMES: dict[str, pendulum.DateTime] = {}


def _remember_time(zone: str, text: str, moment: pendulum.DateTime) -> None:
    times = _TIMES.get(zone)
    if times is None:
        if len(_TIMES) >= _CACHE_SIZE:
            _TIMES.clear()
        times = _TIMES.setdefault(zone, {})
    elif len(times) >= _CACHE_SIZE:
        times.clear()
    times[text] = moment


_new = object.__new__
_set = object.__setattr__


def _status_report(values: dict[str, Any]) -> StatusReport:
    """``StatusReport(**values)`` for ``values`` holding every field in order, about twice as fast:
    the frozen dataclass's ``__init__`` sets its fields one ``object.__setattr__`` at a time, this
    sets the instance's ``__dict__`` at once. Same fields, equality, hash and repr (StatusReport
    has no ``__post_init__``, defaults or slots: tests hold it to that)."""
    report = _new(StatusReport)
    _set(report, "__dict__", values)
    return report


def _plain_time_or_none(text: str, tz: str) -> pendulum.DateTime | None:
    """:func:`_plain_time`, None where it cannot tell (pendulum's turn: it decides as before)."""
    try:
        return _plain_time(text, tz)
    except Exception:  # an unknown or unhashable zone
        return None


@lru_cache(maxsize=4096)
def _plain_time(text: str, tz: str) -> pendulum.DateTime | None:
    """``pendulum.parse(text, tz=tz)`` for a plain ISO text (:data:`_PLAIN_TIME`), about ten times
    faster, and cached: a page of statuses repeats the same minutes. None for other texts.

    The same value, zone and ``fold``: naive texts are localised by ``pendulum.datetime`` (DST
    gaps and folds as there), "Z" is UTC; UTC is built directly (``pendulum.datetime`` would only
    add ``tzinfo=UTC``).
    """
    if not _PLAIN_TIME.fullmatch(text):
        return None
    utc = text.endswith("Z")
    try:
        moment = datetime.fromisoformat(text[:-1] if utc else text)
    except ValueError:  # e.g. month 13
        return None
    parts = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    if utc or tz == "UTC":
        return pendulum.DateTime(*parts, moment.microsecond, tzinfo=pendulum.UTC, fold=1)
    return pendulum.datetime(*parts, moment.microsecond, tz=tz)


def parse_amount(value: Any) -> Decimal:
    """An amount written as a number or a decimal string (``"1.234,50"`` is not one: it raises)."""
    if isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` items."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (so resending cannot duplicate)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError wraps the cause
        return type(reason).__name__ in {"NewConnectionError", "NameResolutionError", "ConnectTimeoutError"}
    return False


def _whole_report(report: StatusReport) -> StatusReport:
    return report


def _status_of(report: StatusReport) -> DeliveryStatus:
    return report.status


class _Wanted:
    """The ids a status look-up is after, and what it keeps of each one found (the listing is read
    until every one is found, or to its end)."""

    def __init__(self, message_ids: Iterable[str], keep: Callable[[StatusReport], Any]) -> None:
        # The caller's own strings are kept as keys, not the listing's copies of them.
        self.ids = {i: i for i in map(str, message_ids)}
        self.keep = keep
        self.found: dict[str, Any] = {}
        self.size = len(self.ids)
        self.statuses = keep is _status_of  # the trigger's case, a million times: no call

    def take(self, report: StatusReport) -> bool:
        """Keep ``report`` if it is wanted; True once every wanted id is found."""
        message_id = self.ids.get(report.message_id)
        if message_id is None:
            return False
        found = self.found
        found[message_id] = report.status if self.statuses else self.keep(report)
        return len(found) == self.size
