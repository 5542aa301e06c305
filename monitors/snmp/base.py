"""The contract between the poll engine and SNMP transports.

A transport sends GET / GETBULK to one target and returns decoded variable bindings or a
``PollFailure`` that says why not. It never raises for a device's own failure: a dead county is
data, not an exception that stops the round. The pysnmp transport is the reference for
correctness; the lean v2c fast path must give identical results for what it understands and
hand anything else back to pysnmp.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from inventory.enums import SnmpAuthProtocol, SnmpPrivProtocol, SnmpVersion

Oid = tuple[int, ...]


class ValueKind(enum.StrEnum):
    INTEGER = "integer"
    OCTETS = "octets"
    OID = "oid"
    IPADDRESS = "ipaddress"
    COUNTER32 = "counter32"
    GAUGE32 = "gauge32"
    TIMETICKS = "timeticks"
    OPAQUE = "opaque"
    COUNTER64 = "counter64"
    NULL = "null"
    NO_SUCH_OBJECT = "noSuchObject"
    NO_SUCH_INSTANCE = "noSuchInstance"
    END_OF_MIB_VIEW = "endOfMibView"


@dataclass(frozen=True, slots=True)
class VarBind:
    oid: Oid
    kind: ValueKind
    value: int | bytes | Oid | str | None  # str only for IpAddress (dotted quad)


class FailureCause(enum.StrEnum):
    TIMEOUT = "timeout"  # no answer within timeout x retries
    AUTH_FAILED = "auth_failed"  # wrong v3 key (wrong digest), unknown user
    UNKNOWN_ENGINE = "unknown_engine"  # engine-ID discovery failed
    NOT_IN_TIME_WINDOW = "not_in_time_window"
    MALFORMED = "malformed"  # undecodable / wrong request-id / inconsistent response
    ERROR_STATUS = "error_status"  # the agent answered with a non-zero error-status
    UNREACHABLE = "unreachable"  # ICMP unreachable, no route, refused
    CONFIG = "config"  # our side: missing secret, unsupported protocol
    INTERNAL = "internal"  # a bug on our side, recorded per device


@dataclass(frozen=True, slots=True)
class PollFailure:
    cause: FailureCause
    detail: str  # says what was wrong and what to do; never contains a secret

    def __str__(self) -> str:
        return f"{self.cause}: {self.detail}"


@dataclass(frozen=True, slots=True)
class SnmpCredentials:
    """Resolved credentials for one device. Secret values never appear in repr."""

    version: SnmpVersion
    community: str | None = field(default=None, repr=False)
    user: str | None = None
    auth_protocol: SnmpAuthProtocol | None = None
    auth_key: str | None = field(default=None, repr=False)
    priv_protocol: SnmpPrivProtocol | None = None
    priv_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SnmpTarget:
    device: str  # inventory device name, for results and logs
    host: str
    port: int
    credentials: SnmpCredentials
    timeout_s: float = 2.0
    retries: int = 1


GetResult = list[VarBind] | PollFailure


class SnmpTransport(Protocol):
    async def get(self, target: SnmpTarget, oids: Sequence[Oid]) -> GetResult: ...

    async def bulk(
        self,
        target: SnmpTarget,
        non_repeaters: Sequence[Oid],
        repeaters: Sequence[Oid],
        max_repetitions: int,
    ) -> GetResult: ...

    async def close(self) -> None: ...
