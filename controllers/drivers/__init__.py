"""SSH device drivers: contracts and registry (``base``), transport and scheduling
(``transport``, ``session``), host keys (``known_hosts``), parameter checks (``validate``), and
one module per platform family, each registering itself:

============== ============================ ==================== ===========================
platform       module                       netmiko device_type  contract
============== ============================ ==================== ===========================
cisco_ios      ``cisco_ios``                ``cisco_ios``        ``RouterDriver``
cisco_codec    ``cisco_codec``              ``terminal_server``  ``CodecDriver``
mcu_cli        ``mcu_cli``                  ``generic``          ``McuDriver``
comtech_cdm    ``comtech_cdm``              ``generic``          ``ModemDriver``
idirect_remote ``comtech_cdm``              ``generic``          ``ModemDriver``
idirect_hub    ``comtech_cdm``              ``generic``          ``ModemDriver``
============== ============================ ==================== ===========================

Typical use (the composition root builds the runner once)::

    runner = SshRunner(KnownHostsStore.in_data_dir(data_dir), SshSettings(workers=32))
    router = router_for(DeviceTarget.from_model(device, links), runner)
    change = await router.move_to_link("site-backup")
"""

from controllers.drivers import cisco_codec, cisco_ios, comtech_cdm, mcu_cli
from controllers.drivers.base import (
    CallStatus,
    Change,
    CodecDriver,
    CommandResult,
    DefaultRoute,
    DeviceDriver,
    DeviceTarget,
    DialResult,
    InterfaceStatus,
    McuConference,
    McuDriver,
    McuPorts,
    ModemDriver,
    ModemStatus,
    Participant,
    RouterDriver,
    RouterLink,
    StaticDefault,
    Verification,
    codec_for,
    driver_for,
    mcu_for,
    modem_for,
    register,
    registered_platforms,
    router_for,
)
from controllers.drivers.known_hosts import HostKey, KnownHostsStore, host_entry
from controllers.drivers.session import HostKeyPolicy, SshDriver, SshRunner, SshSettings
from controllers.drivers.transport import Timeouts

__all__ = [
    "CallStatus",
    "Change",
    "CodecDriver",
    "CommandResult",
    "DefaultRoute",
    "DeviceDriver",
    "DeviceTarget",
    "DialResult",
    "HostKey",
    "HostKeyPolicy",
    "InterfaceStatus",
    "KnownHostsStore",
    "McuConference",
    "McuDriver",
    "McuPorts",
    "ModemDriver",
    "ModemStatus",
    "Participant",
    "RouterDriver",
    "RouterLink",
    "SshDriver",
    "SshRunner",
    "SshSettings",
    "StaticDefault",
    "Timeouts",
    "Verification",
    "cisco_codec",
    "cisco_ios",
    "codec_for",
    "comtech_cdm",
    "driver_for",
    "host_entry",
    "mcu_cli",
    "mcu_for",
    "modem_for",
    "register",
    "registered_platforms",
    "router_for",
]
