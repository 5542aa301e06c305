"""Link health as the monitors publish it and the failover engine consumes it."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Health(enum.StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"  # no evidence yet (start-up), or the evidence is stale


@dataclass(frozen=True, slots=True)
class LinkQuality:
    """Probe statistics over the sliding window."""

    loss_pct: float
    rtt_ms: float | None
    jitter_ms: float | None
    samples: int


@dataclass(frozen=True, slots=True)
class LinkHealthReport:
    """One link's evaluated health at ``at`` (monotonic seconds), with the numbers behind it."""

    link: str
    site: str
    health: Health
    since: float  # when it entered this health
    at: float
    quality: LinkQuality | None
    interface_up: bool | None  # ifOperStatus from the last poll, None if not polled yet
    reason: str  # e.g. "loss 35.0% >= 20% for 3.0 s"
