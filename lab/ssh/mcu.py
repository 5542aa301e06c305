"""The CLI of a lab MCU (platform ``mcu_cli``): conferences and their participants. Pure logic.

Prompt ``<name>>``; netmiko's ``generic`` device type finds it (``send_command`` works as is).
Errors are one line starting with ``Error:``. Adding a participant dials it out: a lab codec
gets a call into the conference (``lab.ssh.calls``), so its site's link carries the media.
"""

from __future__ import annotations

import re

from inventory.enums import DeviceKind
from lab.ssh import calls
from lab.ssh.cli import CliContext, CliMemory, Reply, register_cli
from lab.state import Device, LabNetwork

_CONF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

HELP = """\
Commands:
  conference create NAME         create an empty conference
  conference end NAME            end a conference and drop its participants
  participant add NAME ENDPOINT  dial ENDPOINT (device name or address) into NAME
  participant remove NAME ENDPOINT
  participant list NAME          participants of NAME and their state
  show conferences               active conferences
  show ports                     video ports in use and free
  exit                           log out
"""


class McuSession:
    def __init__(self, net: LabNetwork, device: Device, context: CliContext) -> None:
        self.net = net
        self.device = device
        self.memory: CliMemory = context.memory

    @property
    def prompt(self) -> str:
        return f"{self.device.name}>"

    def _reply(self, output: str, *, close: bool = False) -> Reply:
        return Reply(output, "" if close else self.prompt, close=close)

    def start(self) -> Reply:
        model = self.device.model or "MCU"
        return self._reply(f'\n{model} {self.device.name}\nType "help" for commands.\n\n')

    def interrupt(self, char: str) -> Reply:
        return self._reply("\n")

    def handle(self, line: str) -> Reply:
        words = line.split()
        if not words:
            return self._reply("")
        low = [w.lower() for w in words]
        if low[0] in ("exit", "quit", "logout"):
            return self._reply("Bye.\n", close=True)
        if low[0] in ("help", "?"):
            return self._reply(HELP)
        if low[:2] == ["show", "ports"]:
            return self._reply(self._ports())
        if low[:2] == ["show", "conferences"]:
            return self._reply(self._conferences())
        if low[0] == "conference" and len(words) == 3 and low[1] in ("create", "end"):
            return self._reply(self._conference(low[1], words[2]))
        if low[0] == "participant" and len(words) >= 3 and low[1] in ("add", "remove", "list"):
            return self._reply(self._participant(low[1], words[2:]))
        if low[0] in ("conference", "participant", "show"):
            return self._reply(f'Error: incomplete or invalid arguments for "{words[0]}"\n')
        return self._reply(f'Error: unknown command "{words[0]}" (type "help")\n')

    def _ports(self) -> str:
        used = calls.ports_in_use(self.device)
        total = self.device.ports_total
        return (
            f"Video ports: total {total}, in use {used}, free {max(0, total - used)}\n"
            f"Active conferences: {len(self.device.conferences)}\n"
        )

    def _conferences(self) -> str:
        if not self.device.conferences:
            return "No active conferences\n"
        lines = [f"{'Conference':<32} Participants"]
        for name, members in sorted(self.device.conferences.items()):
            lines.append(f"{name:<32} {len(members)}")
        return "\n".join(lines) + "\n"

    def _conference(self, verb: str, name: str) -> str:
        confs = self.device.conferences
        if verb == "create":
            if not _CONF_NAME.match(name):
                return f'Error: invalid conference name "{name}"\n'
            if name in confs:
                return f'Error: conference "{name}" already exists\n'
            confs[name] = []
            return f'Conference "{name}" created\n'
        if name not in confs:
            return f'Error: no conference "{name}"\n'
        for member in list(confs[name]):
            calls.mcu_drop(self.net, self.memory, self.device, name, member)
        del confs[name]
        return f'Conference "{name}" ended\n'

    def _participant(self, verb: str, args: list[str]) -> str:
        name = args[0]
        confs = self.device.conferences
        if name not in confs:
            return f'Error: no conference "{name}"\n'
        members = confs[name]
        if verb == "list":
            if len(args) != 1:
                return 'Error: incomplete or invalid arguments for "participant"\n'
            return self._list(name, members)
        if len(args) != 2:
            return 'Error: incomplete or invalid arguments for "participant"\n'
        endpoint = calls.find_device(self.net, args[1], DeviceKind.VIDEO_ENDPOINT)
        if endpoint is None:
            return f'Error: unknown endpoint "{args[1]}"\n'
        if verb == "remove":
            if endpoint.name not in members:
                return f'Error: "{endpoint.name}" is not in conference "{name}"\n'
            members.remove(endpoint.name)
            calls.mcu_drop(self.net, self.memory, self.device, name, endpoint.name)
            return f'Participant "{endpoint.name}" removed from conference "{name}"\n'
        if endpoint.name in members:
            return f'Error: "{endpoint.name}" is already in conference "{name}"\n'
        if calls.ports_in_use(self.device) >= self.device.ports_total:
            return "Error: no free video ports\n"
        try:
            calls.mcu_dial_out(self.net, self.memory, self.device, name, endpoint)
        except calls.CallRefused as refused:
            return f'Error: call to "{endpoint.name}" failed: {refused}\n'
        members.append(endpoint.name)
        return f'Participant "{endpoint.name}" added to conference "{name}"\n'

    def _list(self, name: str, members: list[str]) -> str:
        lines = [f"Conference: {name}", f"{'Participant':<32} {'State':<13} Rate"]
        for member in members:
            call = calls.connected_to(self.net, self.device, name, member)
            state = "connected" if call is not None else "disconnected"
            rate = str(call.rate_kbps) if call is not None else "-"
            lines.append(f"{member:<32} {state:<13} {rate}")
        lines.append(f"Total: {len(members)}")
        return "\n".join(lines) + "\n"


register_cli("mcu_cli", McuSession, kind=DeviceKind.MCU)
