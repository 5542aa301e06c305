"""Errors the controllers raise on purpose: device drivers first (SSH, commands, verification).

Every one derives from ``inventory.errors.TiandiError`` and carries the device it concerns; the
message says what was wrong and what to do. Errors raised in the middle of a change carry what
was sent (``change``) and what the driver did about it (``rollback``), so the caller can write
the audit trail without guessing. No message or attribute ever holds a password or key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from inventory.errors import TiandiError

if TYPE_CHECKING:
    from controllers.drivers.base import Change, Verification


class DriverError(TiandiError):
    """Something went wrong talking to one device.

    Raised during a change, it carries the ``change`` as sent (or as far as it got) and the
    ``rollback`` the driver made (None: none was needed, or it failed — see the message).
    """

    def __init__(
        self,
        device: str,
        message: str,
        *,
        change: Change | None = None,
        rollback: Change | None = None,
    ) -> None:
        self.device = device
        self.detail = message
        self.change = change
        self.rollback = rollback
        super().__init__(self._compose())

    def _compose(self) -> str:
        if self.change is None or not self.change.commands:
            tail = ""
        elif self.rollback is not None and (
            self.rollback.verification is None or self.rollback.verification.ok
        ):
            tail = " The change was rolled back to the previous state."
        elif self.rollback is not None:
            tail = (
                " A rollback was sent but the device did NOT return to the previous state "
                f"({self.rollback.verification.reason if self.rollback.verification else '?'}): "
                "it needs attention."
            )
        else:
            tail = (
                " The change may be half-applied and was NOT rolled back: read the device's "
                "state before anything else."
            )
        return f"{self.device}: {self.detail}{tail}"

    def attach(self, change: Change | None, rollback: Change | None) -> Self:
        """Record what was sent and what was undone (the driver does, before re-raising)."""
        self.change = change
        self.rollback = rollback
        self.args = (self._compose(),)
        return self


class InvalidParameter(DriverError, ValueError):
    """A parameter for a device command failed validation; nothing was sent to the device."""

    def __init__(self, device: str, parameter: str, reason: str) -> None:
        self.parameter = parameter
        super().__init__(device, f"invalid {parameter}: {reason}; nothing was sent to the device")


class NoDriver(DriverError):
    """No driver is registered for a device's platform, or it lacks the asked capability."""


class DeviceUnreachable(DriverError):
    """No SSH session could be opened, or the open session was lost."""


class AuthenticationFailed(DriverError):
    """The device refused the credentials of its SSH profile."""


class HostKeyError(DriverError):
    """The device's SSH host key could not be verified; no credentials were sent."""

    def __init__(self, device: str, host: str, fingerprint: str, message: str) -> None:
        self.host = host
        self.fingerprint = fingerprint
        super().__init__(device, message)


class HostKeyUnknown(HostKeyError):
    """Tiandi has no host key recorded for the device (and trust-on-first-use is off)."""

    def __init__(self, device: str, host: str, fingerprint: str) -> None:
        super().__init__(
            device,
            host,
            fingerprint,
            f"the SSH host key of {host} is not in Tiandi's known-hosts store (the device "
            f"offered {fingerprint}); compare that fingerprint with the device's console "
            "('show crypto key mypubkey' or equivalent), then record it with the operator's "
            "trust action, or enable trust-on-first-use for a lab",
        )


class HostKeyMismatch(HostKeyError):
    """The device offered a host key different from the recorded one: refused, always."""

    def __init__(self, device: str, host: str, fingerprint: str, expected: str) -> None:
        self.expected = expected
        super().__init__(
            device,
            host,
            fingerprint,
            f"the SSH host key of {host} CHANGED: recorded {expected}, offered {fingerprint}. "
            "This is what a man-in-the-middle looks like; Tiandi refused to log in. If the "
            "device was really replaced or re-keyed, check the new fingerprint on its console, "
            "then re-trust it with the operator's trust action (replace=True)",
        )


class CommandRejected(DriverError):
    """The device answered a command with an error."""

    def __init__(
        self,
        device: str,
        command: str,
        error_text: str,
        *,
        change: Change | None = None,
        rollback: Change | None = None,
    ) -> None:
        self.command = command
        self.error_text = error_text
        super().__init__(
            device,
            f"the device rejected {command!r}: {' '.join(error_text.split())!r}; check the "
            "inventory (interfaces, next hops) against the device's configuration.",
            change=change,
            rollback=rollback,
        )


class UnexpectedOutput(DriverError):
    """The device's answer could not be parsed: a different software version or platform."""

    def __init__(self, device: str, command: str, reason: str) -> None:
        self.command = command
        super().__init__(
            device,
            f"cannot read the output of {command!r}: {reason}; check that the inventory "
            "platform matches the device's software",
        )


class VerificationFailed(DriverError):
    """A change was made but reading the device back did not show the expected state."""

    def __init__(
        self,
        device: str,
        verification: Verification,
        *,
        change: Change | None = None,
        rollback: Change | None = None,
    ) -> None:
        self.verification = verification
        super().__init__(
            device,
            f"verification failed: {verification.reason}.",
            change=change,
            rollback=rollback,
        )


class DriverTimeout(DriverError):
    """A connect, command or whole operation took longer than allowed; the session was closed."""

    def __init__(
        self,
        device: str,
        operation: str,
        timeout_s: float,
        *,
        change: Change | None = None,
        rollback: Change | None = None,
    ) -> None:
        self.operation = operation
        self.timeout_s = timeout_s
        super().__init__(
            device,
            f"{operation} did not finish within {timeout_s:g} s and its SSH session was closed; "
            "if the device is slow rather than dead, raise the SSH timeouts.",
            change=change,
            rollback=rollback,
        )
