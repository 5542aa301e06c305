"""Satellite terminals with a line CLI (``comtech_cdm``; the lab's ``idirect_remote`` and
``idirect_hub`` speak the same CLI): RF/demodulator status and the transmitter.

netmiko's ``generic`` device type finds the ``<name>>`` prompt. Errors are one line starting
with ``ERROR:``. ``show status`` is ``Key:   value`` lines; parsing is pure and tested on
captured output.
"""

from __future__ import annotations

import re
import time

from controllers.drivers.base import CommandResult, ModemStatus, register
from controllers.drivers.session import SshDriver
from controllers.drivers.transport import CliSession
from controllers.errors import CommandRejected, UnexpectedOutput

SHOW_STATUS = "show status"

_ERROR = re.compile(r"^ERROR: (?P<reason>.+?)\s*$", re.MULTILINE)
_LINE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z /]*?):\s+(?P<value>.*?)\s*$")
_NUMBER = re.compile(r"^(?P<n>-?\d+(?:\.\d+)?)(?:\s*\S+)?$")
_MODCOD = re.compile(r"^(?P<n>\d+) \((?P<name>[^)]*)\)$")


def find_error(output: str) -> str | None:
    match = _ERROR.search(output)
    return match["reason"] if match else None


def _number(fields: dict[str, str], key: str) -> float:
    match = _NUMBER.match(fields.get(key, ""))
    if match is None:
        raise ValueError(f"{key!r} is missing or not a number")
    return float(match["n"])


def _flag(fields: dict[str, str], key: str, true: str, false: str) -> bool:
    value = fields.get(key, "").upper()
    if value not in (true, false):
        raise ValueError(f"{key!r} is {value or 'missing'}, expected {true} or {false}")
    return value == true


def parse_status(text: str) -> ModemStatus:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is not None:
            fields[match["key"]] = match["value"]
    modcod = _MODCOD.match(fields.get("MODCOD", ""))
    if modcod is None:
        raise ValueError("'MODCOD' is missing or not 'N (name)'")
    return ModemStatus(
        unit=fields.get("Unit", ""),
        name=fields.get("Name", ""),
        demod_locked=_flag(fields, "Demodulator", "LOCKED", "UNLOCKED"),
        esno_db=_number(fields, "Es/No"),
        rx_level_dbm=_number(fields, "Rx level"),
        modcod=int(modcod["n"]),
        modcod_name=modcod["name"],
        tx_on=_flag(fields, "Tx", "ON", "OFF"),
        tx_power_dbm=_number(fields, "Tx power"),
        tx_rate_kbps=_number(fields, "Tx rate"),
        rx_rate_kbps=_number(fields, "Rx rate"),
        buc_alarm=_flag(fields, "BUC alarm", "FAULT", "OK"),
        lnb_alarm=_flag(fields, "LNB alarm", "FAULT", "OK"),
    )


@register("comtech_cdm", "idirect_remote", "idirect_hub")
class SatelliteModem(SshDriver):
    """``ModemDriver`` for the satellite-terminal line CLI."""

    device_type = "generic"

    def _command(self, cli: CliSession, command: str) -> str:
        output = cli.send(command)
        reason = find_error(output)
        if reason is not None:
            raise CommandRejected(self.name, command, reason)
        return output

    async def status(self) -> ModemStatus:
        text = await self._run(lambda cli: self._command(cli, SHOW_STATUS), operation=SHOW_STATUS)
        try:
            return parse_status(text)
        except ValueError as err:
            raise UnexpectedOutput(self.name, SHOW_STATUS, str(err)) from None

    async def set_transmitter(self, on: bool) -> CommandResult:
        if not isinstance(on, bool):
            raise TypeError("set_transmitter takes True or False")
        command = "tx on" if on else "tx off"
        expected = "Transmitter ON" if on else "Transmitter OFF"

        def job(cli: CliSession) -> CommandResult:
            t0 = time.monotonic()
            output = self._command(cli, command)
            if expected not in output:
                raise UnexpectedOutput(self.name, command, f"no {expected!r} in the answer")
            return CommandResult(self.name, (command,), output, time.monotonic() - t0)

        async with self._runner.lock(self.name):
            return await self._run(job, operation=command)
