"""A Cisco-xAPI-like shell for lab video endpoints (platform ``cisco_codec``). Pure logic.

Modelled on the Cisco TelePresence/RoomOS ``xacli`` over SSH: no prompt; each response is
closed by a line ``** end``. ``xStatus`` answers ``*s`` lines, ``xConfiguration`` reads answer
``*c`` lines, ``xCommand`` answers ``OK`` then a ``*r <Name>Result (status=OK):`` block, or only
a ``(status=Error)`` block with a ``Reason:``. Paths and parameter names are case-insensitive;
parameters are written ``Name: value`` or ``Name: "quoted value"``.

Drive it with netmiko's ``terminal_server`` (or ``generic``) device type and
``send_command(cmd, expect_string=r"\\*\\* end")`` — there is no prompt to find.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from inventory.enums import DeviceKind
from lab.ssh import calls
from lab.ssh.cli import CliContext, CliMemory, Reply, register_cli
from lab.state import Call, Device, LabNetwork

SOFTWARE = "ce9.15.3.22 5b9a3e8f5e1 2022-10-12"
SOFTWARE_VERSION = "ce9.15.3.22"
SIP_DOMAIN = "lab.tiandi"
DEFAULT_PRODUCT = "Cisco Webex Room Kit"
VIDEO_SHARE = 0.9  # of a call's rate that is video; the rest is audio
PACKET_BYTES = 1100

_PARAM_START = re.compile(r"[A-Za-z][A-Za-z0-9]*\s*:")
_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9]*)\s*:\s*("([^"]*)"|\S+)')
_STATUS_ROOTS = ("call", "mediachannels", "sip", "systemunit")

Lines = list[tuple[tuple[str, ...], str]]


def end(body: str = "") -> str:
    return f"{body}** end\n"


def ok_result(name: str, fields: list[tuple[str, str]] | None = None) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in fields or [])
    return f"OK\n*r {name} (status=OK):\n{lines}** end\n"


def error_result(name: str, reason: str) -> str:
    return f"*r {name} (status=Error):\n    Reason: {reason}\n** end\n"


class CodecSession:
    """One xacli login on a lab codec."""

    def __init__(self, net: LabNetwork, device: Device, context: CliContext) -> None:
        self.net = net
        self.device = device
        self.memory: CliMemory = context.memory
        self.echo = True
        self._commands: dict[tuple[str, ...], Callable[[dict[str, str]], str]] = {
            ("dial",): self._dial,
            ("call", "disconnect"): self._disconnect,
            ("call", "disconnectall"): self._disconnect_all,
        }

    def _reply(self, output: str, *, close: bool = False) -> Reply:
        return Reply(output, "", echo=self.echo, close=close)

    def start(self) -> Reply:
        return self._reply(
            f"Welcome to {self.device.name}\n"
            f"Cisco Codec Release {SOFTWARE}\n"
            f"SW Release Date: {SOFTWARE.rsplit(' ', 1)[-1]}\n"
            "*r Login successful\n\nOK\n\n"
        )

    def interrupt(self, char: str) -> Reply:
        return self._reply("")

    def handle(self, line: str) -> Reply:
        text = line.strip()
        if not text:
            return self._reply("")
        word, _, rest = text.partition(" ")
        root = word.lower()
        rest = rest.strip()
        if root == "xstatus":
            return self._reply(self._status(rest))
        if root == "xcommand":
            return self._reply(self._command(rest))
        if root == "xconfiguration":
            return self._reply(self._configuration(rest))
        if root in ("bye", "exit", "quit"):
            return self._reply("bye.\n", close=True)
        if root == "echo" and rest.lower() in ("on", "off"):
            self.echo = rest.lower() == "on"
            return self._reply("\nOK\n")
        if root == "help":
            return self._reply(
                "- User Commands -\n\n"
                "help             xcommand         xconfiguration   xstatus\n"
                "bye              echo\n\nOK\n"
            )
        return self._reply(error_result("Result", "Command not recognized."))

    # ---- xStatus ----

    def status_lines(self) -> Lines:
        dev, now = self.device, self.net.now()
        lines: Lines = []
        for call in sorted(dev.calls, key=lambda c: c.call_id):
            lines.extend(self._call_lines(call, now))
        for call in sorted(dev.calls, key=lambda c: c.call_id):
            lines.extend(self._media_lines(call, now))
        reg = "Registered" if dev.registered and dev.powered else "Failed"
        reason = "" if dev.registered else "404 Not Found"
        lines.extend(
            [
                (("SIP", "Registration", "1", "Reason"), f'"{reason}"'),
                (("SIP", "Registration", "1", "Status"), reg),
                (("SIP", "Registration", "1", "URI"), f'"{dev.name}@{SIP_DOMAIN}"'),
                (("SystemUnit", "ProductId"), f'"{dev.model or DEFAULT_PRODUCT}"'),
                (("SystemUnit", "Software", "Version"), f'"{SOFTWARE_VERSION}"'),
                (("SystemUnit", "Uptime"), str(int(now - dev.boot_time))),
            ]
        )
        return lines

    def _call_lines(self, call: Call, now: float) -> Lines:
        cid = str(call.call_id)
        incoming = (self.device.name, call.call_id) in self.memory.incoming
        mcu = "@" in call.remote and call.remote.split("@", 1)[1] in self.net.devices
        remote = call.remote if "@" in call.remote else f"{call.remote}@{SIP_DOMAIN}"
        fields = [
            ("AnswerState", "Autoanswered" if incoming else "Answered"),
            ("CallRate", str(call.rate_kbps)),
            ("CallType", "Video"),
            ("CallbackNumber", f'"sip:{remote}"'),
            ("DeviceType", "MCU" if mcu else "Endpoint"),
            ("Direction", "Incoming" if incoming else "Outgoing"),
            ("DisplayName", f'"{call.remote}"'),
            ("Duration", str(max(0, int(now - call.started)))),
            ("Encryption Type", '"None"'),
            ("PlacedOnHold", "False"),
            ("Protocol", '"Sip"'),
            ("ReceiveCallRate", str(call.rx_kbps)),
            ("RemoteNumber", f'"{remote}"'),
            ("Status", "Connected"),
            ("TransmitCallRate", str(call.tx_kbps)),
        ]
        return [(("Call", cid, *k.split(" ")), v) for k, v in fields]

    def _media_lines(self, call: Call, now: float) -> Lines:
        seconds = max(0.0, now - call.started)
        lines: Lines = []
        for n, (direction, rate) in enumerate(
            (("Incoming", call.rx_kbps), ("Outgoing", call.tx_kbps))
        ):
            channel = str(call.call_id * 100 + n + 1)
            video_kbps = int(rate * VIDEO_SHARE)
            packets = int(video_kbps * 1000 / 8 / PACKET_BYTES * seconds)
            lost = int(packets * call.loss_pct / 100.0) if direction == "Incoming" else 0
            prefix = ("MediaChannels", "Call", str(call.call_id), "Channel", channel)
            lines.extend(
                [
                    ((*prefix, "Direction"), direction),
                    ((*prefix, "Netstat", "ChannelRate"), str(video_kbps * 1000)),
                    ((*prefix, "Netstat", "Jitter"), str(round(call.jitter_ms))),
                    ((*prefix, "Netstat", "Loss"), str(lost)),
                    ((*prefix, "Netstat", "Packets"), str(packets)),
                    ((*prefix, "Type"), "Video"),
                ]
            )
        return lines

    def _status(self, rest: str) -> str:
        query = [w.lower() for w in rest.split()]
        if query and query[0] not in _STATUS_ROOTS:
            xpath = "/".join(w.capitalize() for w in rest.split())
            return (
                "*r Status (status=Error):\n"
                "    Reason: No match on address expression.\n"
                f"    XPath: Status/{xpath}\n"
                "** end\n"
            )
        body = []
        for path, value in self.status_lines():
            if [p.lower() for p in path[: len(query)]] == query:
                body.append(f"*s {' '.join(path)}: {value}\n")
        return end("".join(body))

    # ---- xCommand ----

    def _command(self, rest: str) -> str:
        m = _PARAM_START.search(rest)
        path_text, params_text = (rest[: m.start()], rest[m.start() :]) if m else (rest, "")
        path = tuple(w.lower() for w in path_text.split())
        handler = self._commands.get(path)
        name = "".join(w.capitalize() for w in path_text.split()) or "Command"
        if handler is None:
            return error_result("Result", "Unknown command")
        params: dict[str, str] = {}
        pos = 0
        while pos < len(params_text):
            pm = _PARAM.match(params_text, pos)
            if pm is None:
                if params_text[pos:].strip():
                    return error_result(f"{name}Result", "Invalid parameter syntax")
                break
            value = pm.group(3) if pm.group(3) is not None else pm.group(2)
            params[pm.group(1).lower()] = value
            pos = pm.end()
        return handler(params)

    def _dial(self, params: dict[str, str]) -> str:
        number = params.get("number")
        if not number:
            return error_result("DialResult", "Missing or invalid parameter(s): Number")
        rate_text = params.get("callrate", str(self.device.default_call_rate_kbps))
        if not rate_text.isdigit():
            return error_result("DialResult", "Invalid value: CallRate")
        try:
            call = calls.dial(self.net, self.memory, self.device, number, int(rate_text))
        except calls.CallRefused as refused:
            return error_result("DialResult", str(refused))
        return ok_result(
            "DialResult", [("CallId", str(call.call_id)), ("ConferenceId", str(call.call_id))]
        )

    def _disconnect(self, params: dict[str, str]) -> str:
        text = params.get("callid")
        if text is None or not text.isdigit():
            return error_result("DisconnectCallResult", "Missing or invalid parameter(s): CallId")
        if not calls.hang_up(self.net, self.memory, self.device, int(text)):
            return error_result("DisconnectCallResult", "No active call(s) found.")
        return ok_result("DisconnectCallResult")

    def _disconnect_all(self, params: dict[str, str]) -> str:
        for call in list(self.device.calls):
            calls.hang_up(self.net, self.memory, self.device, call.call_id)
        return ok_result("DisconnectAllResult")

    # ---- xConfiguration ----

    def _configuration(self, rest: str) -> str:
        path_text, sep, value = rest.partition(":")
        path = [w.lower() for w in path_text.split()]
        rate_path = ["conference", "defaultcall", "rate"]
        if not sep:
            if path == rate_path[: len(path)]:
                rate = self.device.default_call_rate_kbps
                return end(f"*c xConfiguration Conference DefaultCall Rate: {rate}\n")
            return end("")
        value = value.strip().strip('"')
        xpath = "/".join(w.capitalize() for w in path_text.split())
        if path != rate_path:
            return (
                "*r Configuration (status=Error):\n"
                "    Reason: No match on address expression.\n"
                f"    XPath: Configuration/{xpath}\n"
                "** end\n"
            )
        if not value.isdigit() or not calls.MIN_CALL_RATE <= int(value) <= calls.MAX_CALL_RATE:
            return (
                "*r Configuration (status=Error):\n"
                f"    Reason: Invalid value: {value} "
                f"(allowed {calls.MIN_CALL_RATE}..{calls.MAX_CALL_RATE})\n"
                "    XPath: Configuration/Conference/DefaultCall/Rate\n"
                "** end\n"
            )
        self.device.default_call_rate_kbps = int(value)
        return end("")


register_cli("cisco_codec", CodecSession, kind=DeviceKind.VIDEO_ENDPOINT)
