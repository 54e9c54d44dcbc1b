"""Fault injection: seeded 429/500/503 answers, added latency and "commit then drop".

Every gateway request that a fault can touch draws exactly two numbers from ``random.Random(seed)``,
whatever the outcome, so the same seed and the same request sequence give the same faults.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

FAULT_KINDS = ("429", "500", "503", "commit_then_drop", "latency")
# Bounds that keep a fault a fault: a minute of latency outlasts any client read timeout, an hour
# of Retry-After any retry budget; more would only hang the server's requests (or overflow a timer).
MAX_LATENCY_MS = 60_000
MAX_RETRY_AFTER = 3_600


def _number(name: str, value: object, high: float) -> float:
    """``value`` as a float in ``[0, high]``; ``ValueError`` naming the setting otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        number = math.nan
    if not 0.0 <= number <= high:  # also false for NaN
        raise ValueError(f"{name} must be between 0 and {high:g}, got {value!r}")
    return number


@dataclass
class FaultConfig:
    """What to inject. Rates are shares (0..1) of the gateway requests whose path matches ``paths``."""

    rate_429: float = 0.0
    retry_after: float = 1
    rate_500: float = 0.0
    rate_503: float = 0.0
    latency_ms: float = 0
    commit_then_drop: float = 0.0
    seed: int = 0
    paths: list[str] | None = None

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_500", "rate_503", "commit_then_drop"):
            setattr(self, name, _number(name, getattr(self, name), 1.0))
        if self.rate_429 + self.rate_500 + self.rate_503 > 1.0 + 1e-9:
            raise ValueError("rate_429 + rate_500 + rate_503 must not exceed 1")
        for name, high in (("retry_after", MAX_RETRY_AFTER), ("latency_ms", MAX_LATENCY_MS)):
            value = getattr(self, name)
            number = _number(name, value, high)
            setattr(self, name, value if isinstance(value, int | float) else number)  # 7 stays 7
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | str):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        try:
            self.seed = int(self.seed)
        except ValueError:
            raise ValueError(f"seed must be an integer, got {self.seed!r}") from None
        if isinstance(self.paths, str):
            self.paths = [part for part in self.paths.split(",") if part]
        if self.paths is not None:
            if not isinstance(self.paths, list) or not all(isinstance(part, str) for part in self.paths):
                raise ValueError("paths must be a list of path substrings or one comma-separated string")
            self.paths = self.paths or None

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: FaultConfig | None = None) -> FaultConfig:
        """A config from JSON; keys not given keep their value in ``base`` (defaults if None)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        merged = asdict(base) if base is not None else {}
        merged.update(data)
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def active(self) -> bool:
        return bool(
            self.rate_429 or self.rate_500 or self.rate_503 or self.commit_then_drop or self.latency_ms
        )


@dataclass(frozen=True)
class FaultDecision:
    """The faults one request gets: a status to answer instead of the gateway, and/or a drop."""

    latency: float = 0.0
    status: int | None = None
    drop: bool = False


_NO_FAULT = FaultDecision()


class FaultInjector:
    """Decides, request by request, which fault (if any) to inject, and counts what it injected."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        """Replace the settings and restart the random sequence from ``config.seed``."""
        self.config = config
        self._rng = random.Random(config.seed)

    def decide(self, path: str, creates_messages: bool) -> FaultDecision:
        """The faults for one gateway request (draws nothing when no fault is configured)."""
        config = self.config
        if not config.active or (config.paths and not any(part in path for part in config.paths)):
            return _NO_FAULT
        status_draw, drop_draw = self._rng.random(), self._rng.random()
        latency = config.latency_ms / 1000.0
        if latency:
            self.counts["latency"] += 1
        status = None
        if status_draw < config.rate_429:
            status = 429
        elif status_draw < config.rate_429 + config.rate_500:
            status = 500
        elif status_draw < config.rate_429 + config.rate_500 + config.rate_503:
            status = 503
        drop = status is None and creates_messages and drop_draw < config.commit_then_drop
        if status is not None:
            self.counts[str(status)] += 1
        elif drop:
            self.counts["commit_then_drop"] += 1
        return FaultDecision(latency=latency, status=status, drop=drop)

    def reset_counts(self) -> None:
        self.counts.clear()


# Error bodies in each gateway's own style, for the statuses the injector answers with.
_ERROR_BODIES: dict[str, dict[int, dict[str, Any]]] = {
    "smstools": {
        429: {"error": 429, "errorMsg": "Too many requests"},
        500: {"error": 105, "errorMsg": "Server error. Please try again later."},
        503: {"error": 105, "errorMsg": "Service temporarily unavailable"},
    },
    "smsgateway24": {
        429: {"error": 1, "message": "Too many requests"},
        500: {"error": 1, "message": "Internal server error"},
        503: {"error": 1, "message": "Service temporarily unavailable"},
    },
    "textboost": {
        429: {"status": "error", "message": "Too Many Attempts."},
        500: {"status": "error", "message": "Server Error"},
        503: {"status": "error", "message": "Service Unavailable"},
    },
}


def fault_body(gateway: str, status: int) -> dict[str, Any]:
    return _ERROR_BODIES[gateway][status]


def retry_after_header(seconds: float) -> str:
    """Retry-After wants delta-seconds; keep a fraction only if one was configured on purpose."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


# Open connections of sandbox servers, keyed like the ASGI scope's ("server", "client") pair, so
# "commit then drop" can close the socket of the very request it answers. Filled by the uvicorn
# protocol in server.py; empty when the app runs under another server (then a fallback applies).
CONNECTIONS: dict[tuple[Any, Any], asyncio.BaseTransport] = {}


def connection_of(scope: dict[str, Any]) -> asyncio.BaseTransport | None:
    server, client = scope.get("server"), scope.get("client")
    if server is None or client is None:
        return None
    return CONNECTIONS.get((tuple(server), tuple(client)))
