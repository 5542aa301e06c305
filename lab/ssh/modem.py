"""The CLI of a lab satellite terminal (``comtech_cdm``, ``idirect_remote``). Pure logic.

Prompt ``<name>>``; netmiko's ``generic`` device type finds it. ``show status`` reports the
values the SNMP face serves (Es/No, Rx level, lock, MODCOD, BUC/LNB alarms, Tx state and the
link's current rates); ``tx off`` mutes the transmitter, which makes the site's satellite link
unusable and re-routes its traffic, ``tx on`` brings it back. Errors are one line ``ERROR: ...``.
"""

from __future__ import annotations

from inventory.enums import DeviceKind
from lab.ssh.cli import CliContext, Reply, register_cli
from lab.state import Device, LabNetwork
from lab.traffic import reroute_site

# DVB-S2 MODCOD numbers (ETSI EN 302 307-1), as lab/build.py assigns them.
MODCOD_NAMES = (
    "dummy", "QPSK 1/4", "QPSK 1/3", "QPSK 2/5", "QPSK 1/2", "QPSK 3/5", "QPSK 2/3", "QPSK 3/4",
    "QPSK 4/5", "QPSK 5/6", "QPSK 8/9", "QPSK 9/10", "8PSK 3/5", "8PSK 2/3", "8PSK 3/4",
    "8PSK 5/6", "8PSK 8/9", "8PSK 9/10", "16APSK 2/3", "16APSK 3/4", "16APSK 4/5", "16APSK 5/6",
    "16APSK 8/9", "16APSK 9/10", "32APSK 3/4", "32APSK 4/5", "32APSK 5/6", "32APSK 8/9",
    "32APSK 9/10",
)  # fmt: skip

UNITS = {"comtech_cdm": "Comtech CDM-625A", "idirect_remote": "iDirect X7 remote"}

HELP = """\
Commands:
  show status    demodulator, RF and transmitter status
  tx on          enable the transmitter
  tx off         mute the transmitter
  exit           log out
"""


def modcod_name(number: int) -> str:
    return MODCOD_NAMES[number] if 0 <= number < len(MODCOD_NAMES) else f"unknown ({number})"


def _db10(value: int) -> str:
    return f"{value / 10:.1f}"


class ModemSession:
    def __init__(self, net: LabNetwork, device: Device, context: CliContext) -> None:
        self.net = net
        self.device = device

    @property
    def prompt(self) -> str:
        return f"{self.device.name}>"

    def _reply(self, output: str, *, close: bool = False) -> Reply:
        return Reply(output, "" if close else self.prompt, close=close)

    def start(self) -> Reply:
        unit = self.device.model or UNITS.get(self.device.platform, "Satellite modem")
        return self._reply(f"\n{unit} - {self.device.name}\n\n")

    def interrupt(self, char: str) -> Reply:
        return self._reply("\n")

    def handle(self, line: str) -> Reply:
        low = [w.lower() for w in line.split()]
        if not low:
            return self._reply("")
        if low[0] in ("exit", "quit", "logout"):
            return self._reply("", close=True)
        if low[0] in ("help", "?"):
            return self._reply(HELP)
        if low == ["show", "status"]:
            return self._reply(self.status())
        if low[0] == "tx" and len(low) == 2 and low[1] in ("on", "off"):
            return self._reply(self._tx(low[1] == "on"))
        if low[0] in ("show", "tx"):
            return self._reply(f"ERROR: invalid arguments: {line.strip()}\n")
        return self._reply(f"ERROR: unknown command: {line.split()[0]}\n")

    def _links(self) -> list[str]:
        return [n for n, lk in self.net.links.items() if lk.terminal == self.device.name]

    def _rates_kbps(self) -> tuple[float, float]:
        tx = rx = 0.0
        for name in self._links():
            link = self.net.links[name]
            router = self.net.devices.get(link.router)
            iface = router.interface_by_name(link.interface) if router else None
            if iface is not None:
                tx += iface.out_rate_bps / 1000.0
                rx += iface.in_rate_bps / 1000.0
        return tx, rx

    def status(self) -> str:
        dev = self.device
        tx_kbps, rx_kbps = self._rates_kbps()
        unit = dev.model or UNITS.get(dev.platform, "Satellite modem")
        return (
            f"Unit:            {unit}\n"
            f"Name:            {dev.name}\n"
            f"Demodulator:     {'LOCKED' if dev.demod_locked else 'UNLOCKED'}\n"
            f"Es/No:           {_db10(dev.esno_db10)} dB\n"
            f"Rx level:        {_db10(dev.rx_level_dbm10)} dBm\n"
            f"MODCOD:          {dev.modcod} ({modcod_name(dev.modcod)})\n"
            f"Tx:              {'ON' if dev.tx_enabled else 'OFF'}\n"
            f"Tx power:        {_db10(dev.tx_power_dbm10)} dBm\n"
            f"Tx rate:         {tx_kbps:.0f} kbps\n"
            f"Rx rate:         {rx_kbps:.0f} kbps\n"
            f"BUC alarm:       {'FAULT' if dev.buc_alarm else 'OK'}\n"
            f"LNB alarm:       {'FAULT' if dev.lnb_alarm else 'OK'}\n"
        )

    def _tx(self, on: bool) -> str:
        if self.device.tx_enabled != on:
            self.device.tx_enabled = on
            for site in {self.net.links[n].site for n in self._links()}:
                reroute_site(self.net, site)
        return f"Transmitter {'ON' if on else 'OFF'}\n"


register_cli("comtech_cdm", ModemSession, kind=DeviceKind.SATELLITE_TERMINAL)
register_cli("idirect_remote", ModemSession)
