"""Cisco video endpoints over the xAPI shell (platform ``cisco_codec``): calls, dial, hang up.

The xAPI shell (``xacli``) has no prompt: every answer ends with a line ``** end``, so netmiko's
``terminal_server`` device type is used with that as the expected string. ``xStatus`` answers
``*s`` lines; ``xCommand`` answers ``OK`` and a ``*r <Name>Result (status=OK):`` block, or only a
``(status=Error)`` block with a ``Reason:``. Parsing is pure and tested on captured output.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from controllers.drivers import validate
from controllers.drivers.base import CallStatus, CommandResult, DialResult, register
from controllers.drivers.session import SshDriver
from controllers.drivers.transport import CliSession
from controllers.errors import CommandRejected, UnexpectedOutput

END = r"\*\* end"
STATUS_CALLS = "xStatus Call"

_RESULT = re.compile(r"^\*r (?P<name>\S+) \(status=(?P<status>\w+)\):\s*$", re.MULTILINE)
_FIELD = re.compile(r"^\s+(?P<key>[A-Za-z][A-Za-z0-9 ]*?):\s*(?P<value>.*?)\s*$")
_CALL_LINE = re.compile(
    r"^\*s Call (?P<id>\d+) (?P<key>[A-Za-z][A-Za-z0-9 ]*?): (?P<value>.*?)\s*$", re.MULTILINE
)


# ---- commands (validated values only) ---------------------------------------------------------


def dial_command(number: str, rate_kbps: int) -> str:
    return f'xCommand Dial Number: "{number}" CallRate: {rate_kbps}'


def disconnect_command(call_id: int) -> str:
    return f"xCommand Call Disconnect CallId: {call_id}"


def default_rate_command(rate_kbps: int) -> str:
    return f"xConfiguration Conference DefaultCall Rate: {rate_kbps}"


# ---- parsing (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XapiResult:
    """A ``*r`` block: its name, whether status was OK, its fields."""

    name: str
    ok: bool
    fields: dict[str, str]

    @property
    def reason(self) -> str:
        return self.fields.get("Reason", "no reason given")


def parse_result(text: str) -> XapiResult | None:
    """The first ``*r`` block of an answer (None: the answer has none, e.g. a config set)."""
    match = _RESULT.search(text)
    if match is None:
        return None
    fields: dict[str, str] = {}
    for line in text[match.end() :].splitlines()[1:]:
        field = _FIELD.match(line)
        if field is None:
            break
        fields[field["key"]] = field["value"]
    return XapiResult(match["name"], match["status"] == "OK", fields)


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _int(value: str | None) -> int:
    return int(value) if value is not None and value.isdigit() else 0


def parse_calls(text: str) -> tuple[CallStatus, ...]:
    """``xStatus Call``: one ``CallStatus`` per CallId, in CallId order."""
    by_id: dict[int, dict[str, str]] = {}
    for match in _CALL_LINE.finditer(text):
        by_id.setdefault(int(match["id"]), {})[match["key"]] = _unquote(match["value"])
    calls: list[CallStatus] = []
    for call_id, f in sorted(by_id.items()):
        calls.append(
            CallStatus(
                call_id=call_id,
                status=f.get("Status", "Unknown"),
                direction=f.get("Direction", "Unknown"),
                remote=f.get("RemoteNumber", f.get("DisplayName", "")),
                rate_kbps=_int(f.get("CallRate")),
                tx_kbps=_int(f.get("TransmitCallRate")),
                rx_kbps=_int(f.get("ReceiveCallRate")),
                duration_s=_int(f.get("Duration")),
            )
        )
    return tuple(calls)


def xapi_error(text: str) -> str | None:
    """The reason of an error answer, or None."""
    result = parse_result(text)
    if result is not None and not result.ok:
        return result.reason
    return None


# ---- the driver ---------------------------------------------------------------------------


@register("cisco_codec")
class CiscoCodec(SshDriver):
    """``CodecDriver`` for Cisco TelePresence/RoomOS-style xAPI over SSH."""

    device_type = "terminal_server"

    def _command(self, cli: CliSession, command: str) -> str:
        output = cli.send(command, expect=END)
        reason = xapi_error(output)
        if reason is not None:
            raise CommandRejected(self.name, command, reason)
        return output

    async def calls(self) -> tuple[CallStatus, ...]:
        def job(cli: CliSession) -> tuple[CallStatus, ...]:
            output = self._command(cli, STATUS_CALLS)
            if "*s " not in output and output.strip() not in ("", "** end"):
                raise UnexpectedOutput(self.name, STATUS_CALLS, "no '*s' status lines")
            return parse_calls(output)

        return await self._run(job, operation="read the calls")

    async def dial(self, number: str, rate_kbps: int) -> DialResult:
        command = dial_command(
            validate.dial_number(number, device=self.name),
            validate.call_rate(rate_kbps, device=self.name),
        )

        def job(cli: CliSession) -> DialResult:
            t0 = time.monotonic()
            output = self._command(cli, command)
            result = parse_result(output)
            if result is None or not result.fields.get("CallId", "").isdigit():
                raise UnexpectedOutput(self.name, command, "no CallId in the DialResult")
            return DialResult(
                self.name, int(result.fields["CallId"]), (command,), time.monotonic() - t0
            )

        async with self._runner.lock(self.name):
            return await self._run(job, operation="dial")

    async def _change(self, command: str, operation: str) -> CommandResult:
        def job(cli: CliSession) -> CommandResult:
            t0 = time.monotonic()
            output = self._command(cli, command)
            return CommandResult(self.name, (command,), output, time.monotonic() - t0)

        async with self._runner.lock(self.name):
            return await self._run(job, operation=operation)

    async def hang_up(self, call_id: int) -> CommandResult:
        command = disconnect_command(validate.call_id(call_id, device=self.name))
        return await self._change(command, "hang up")

    async def set_default_rate(self, rate_kbps: int) -> CommandResult:
        command = default_rate_command(validate.call_rate(rate_kbps, device=self.name))
        return await self._change(command, "set the default call rate")
