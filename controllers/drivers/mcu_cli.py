"""MCUs with a line CLI (platform ``mcu_cli``): conferences, participants, video ports.

netmiko's ``generic`` device type finds the ``<name>>`` prompt. Errors are one line starting
with ``Error:``. Parsing is pure and tested on captured output.
"""

from __future__ import annotations

import re
import time

from controllers.drivers import validate
from controllers.drivers.base import CommandResult, McuConference, McuPorts, Participant, register
from controllers.drivers.session import SshDriver
from controllers.drivers.transport import CliSession
from controllers.errors import CommandRejected, UnexpectedOutput

SHOW_PORTS = "show ports"
SHOW_CONFERENCES = "show conferences"

_ERROR = re.compile(r"^Error: (?P<reason>.+?)\s*$", re.MULTILINE)
_PORTS = re.compile(
    r"Video ports: total (?P<total>\d+), in use (?P<used>\d+), free (?P<free>\d+)\s*\n"
    r"Active conferences: (?P<confs>\d+)"
)
_CONF_ROW = re.compile(r"^(?P<name>\S+)\s+(?P<count>\d+)\s*$")
_PARTICIPANT_ROW = re.compile(
    r"^(?P<name>\S+)\s+(?P<state>connected|disconnected)\s+(?P<rate>\d+|-)\s*$"
)


def find_error(output: str) -> str | None:
    match = _ERROR.search(output)
    return match["reason"] if match else None


def parse_ports(text: str) -> McuPorts:
    match = _PORTS.search(text)
    if match is None:
        raise ValueError("no 'Video ports: total N, in use N, free N' line")
    return McuPorts(int(match["total"]), int(match["used"]), int(match["free"]),
                    int(match["confs"]))  # fmt: skip


def parse_conferences(text: str) -> tuple[McuConference, ...]:
    if text.strip().startswith("No active conferences"):
        return ()
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("Conference"):
        raise ValueError("no 'Conference  Participants' header")
    out: list[McuConference] = []
    for line in lines[1:]:
        row = _CONF_ROW.match(line)
        if row is None:
            raise ValueError(f"unexpected line {line!r}")
        out.append(McuConference(row["name"], int(row["count"])))
    return tuple(out)


def parse_participants(text: str) -> tuple[Participant, ...]:
    lines = text.strip().splitlines()
    if len(lines) < 2 or not lines[0].startswith("Conference:"):
        raise ValueError("no 'Conference: NAME' header")
    out: list[Participant] = []
    for line in lines[2:]:
        if line.startswith("Total:"):
            break
        row = _PARTICIPANT_ROW.match(line)
        if row is None:
            raise ValueError(f"unexpected line {line!r}")
        rate = None if row["rate"] == "-" else int(row["rate"])
        out.append(Participant(row["name"], row["state"] == "connected", rate))
    return tuple(out)


@register("mcu_cli")
class McuCli(SshDriver):
    """``McuDriver`` for the MCU line CLI."""

    device_type = "generic"

    def _command(self, cli: CliSession, command: str) -> str:
        output = cli.send(command)
        reason = find_error(output)
        if reason is not None:
            raise CommandRejected(self.name, command, reason)
        return output

    async def _read(self, command: str) -> str:
        return await self._run(lambda cli: self._command(cli, command), operation=command)

    async def ports(self) -> McuPorts:
        text = await self._read(SHOW_PORTS)
        try:
            return parse_ports(text)
        except ValueError as err:
            raise UnexpectedOutput(self.name, SHOW_PORTS, str(err)) from None

    async def conferences(self) -> tuple[McuConference, ...]:
        text = await self._read(SHOW_CONFERENCES)
        try:
            return parse_conferences(text)
        except ValueError as err:
            raise UnexpectedOutput(self.name, SHOW_CONFERENCES, str(err)) from None

    async def participants(self, conference: str) -> tuple[Participant, ...]:
        name = validate.name(conference, device=self.name, parameter="conference name")
        command = f"participant list {name}"
        text = await self._read(command)
        try:
            return parse_participants(text)
        except ValueError as err:
            raise UnexpectedOutput(self.name, command, str(err)) from None

    async def _change(self, command: str) -> CommandResult:
        def job(cli: CliSession) -> CommandResult:
            t0 = time.monotonic()
            output = self._command(cli, command)
            return CommandResult(self.name, (command,), output, time.monotonic() - t0)

        async with self._runner.lock(self.name):
            return await self._run(job, operation=command)

    def _conference(self, value: str) -> str:
        return validate.name(value, device=self.name, parameter="conference name")

    def _endpoint(self, value: str) -> str:
        return validate.name(value, device=self.name, parameter="endpoint name")

    async def create_conference(self, name: str) -> CommandResult:
        return await self._change(f"conference create {self._conference(name)}")

    async def end_conference(self, name: str) -> CommandResult:
        return await self._change(f"conference end {self._conference(name)}")

    async def add_participant(self, conference: str, endpoint: str) -> CommandResult:
        conf, ep = self._conference(conference), self._endpoint(endpoint)
        return await self._change(f"participant add {conf} {ep}")

    async def remove_participant(self, conference: str, endpoint: str) -> CommandResult:
        conf, ep = self._conference(conference), self._endpoint(endpoint)
        return await self._change(f"participant remove {conf} {ep}")
