"""The lab's SSH face: a CLI per simulated device, served over asyncssh.

- ``cli``: the contract (``Reply``, ``CliSession``, ``CliMemory``) and the registry by platform;
- ``ios`` (+ ``ios_show``): Cisco IOS-XE routers, ``cisco_ios``;
- ``xapi``: Cisco-xAPI-like video endpoints, ``cisco_codec``;
- ``mcu``: MCUs, ``mcu_cli``; ``modem``: satellite terminals, ``comtech_cdm``/``idirect_remote``;
- ``calls``: what dialling and hanging up do to the lab state;
- ``keys``: stable host keys; ``server``: the asyncssh transport; ``bench``: capacity figures.

Which netmiko ``device_type`` drives which CLI:

============== ==================== ========================================================
platform       netmiko device_type  notes
============== ==================== ========================================================
cisco_ios      ``cisco_ios``        prompt ``name#``, config mode, ``save_config()``
cisco_codec    ``terminal_server``  no prompt: ``send_command(c, expect_string=r"\\*\\* end")``
mcu_cli        ``generic``          prompt ``name>``; ``send_command`` finds it
comtech_cdm    ``generic``          prompt ``name>``
idirect_remote ``generic``          prompt ``name>``
============== ==================== ========================================================
"""

from lab.ssh import ios, mcu, modem, xapi
from lab.ssh.bench import SessionBench, measure_ssh_sessions
from lab.ssh.cli import CliMemory, Reply, cli_platform, session_for
from lab.ssh.ios import reload_config
from lab.ssh.server import SshFace, SshLogin, serve_ssh

__all__ = [
    "CliMemory",
    "Reply",
    "SessionBench",
    "SshFace",
    "SshLogin",
    "cli_platform",
    "ios",
    "mcu",
    "measure_ssh_sessions",
    "modem",
    "reload_config",
    "serve_ssh",
    "session_for",
    "xapi",
]
