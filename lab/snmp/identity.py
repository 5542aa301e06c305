"""What a device says it is: sysDescr, sysObjectID and sysServices, by vendor and model.

Strings follow what the real products print (IOS XE on ISR 4000s, Comtech EF Data modems,
iDirect remotes, Cisco and Polycom codecs, Huawei MCUs). sysObjectIDs are the vendors' real
product OIDs where we know them (``lab.snmp.oids``) and the lab's own product arc otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from inventory.enums import DeviceKind
from lab.snmp import oids
from lab.snmp.ber import Oid
from lab.state import Device

IOS_XE = (
    "Cisco IOS Software [Bengaluru], {family} Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), "
    "Version 17.6.5, RELEASE SOFTWARE (fc2)\r\n"
    "Technical Support: http://www.cisco.com/techsupport\r\n"
    "Copyright (c) 1986-2023 by Cisco Systems, Inc.\r\n"
    "Compiled Wed 25-Jan-23 16:14 by mcpre"
)
HUAWEI_VRP = (
    "Huawei Versatile Routing Platform Software\r\n"
    "VRP (R) software, Version 5.170 (AR2200 V200R010C10SPC700)\r\n"
    "Copyright (C) 2011-2019 HUAWEI TECH CO., LTD\r\n"
    "Huawei {model} Router"
)
CONTACT = "Tiandi NOC <noc@tiandi.lab>"

SERVICES_ROUTER = 78  # layers 2, 3, 4 and 7, as IOS reports
SERVICES_HOST = 72  # layers 4 and 7


@dataclass(frozen=True, slots=True)
class Identity:
    descr: str
    object_id: Oid
    services: int


def _router(vendor: str, model: str) -> Identity:
    upper = model.upper()
    if vendor == "cisco":
        if upper.startswith("ISR43"):
            oid = oids.CISCO_ISR4331 if "4331" in upper else oids.LAB_ROUTER
            return Identity(IOS_XE.format(family="ISR"), oid, SERVICES_ROUTER)
        if upper.startswith("ASR1"):
            oid = oids.CISCO_ASR1001X if "1001" in upper else oids.LAB_ROUTER
            return Identity(IOS_XE.format(family="ASR1000"), oid, SERVICES_ROUTER)
        if upper.startswith("CSR"):
            return Identity(IOS_XE.format(family="Virtual XE"), oids.CISCO_CSR1000V, 78)
        return Identity(IOS_XE.format(family="ISR"), oids.LAB_ROUTER, SERVICES_ROUTER)
    if vendor == "huawei":
        return Identity(HUAWEI_VRP.format(model=model or "AR2220"), oids.LAB_ROUTER, 78)
    return Identity(f"{vendor} {model} router".strip(), oids.LAB_ROUTER, SERVICES_ROUTER)


def _terminal(vendor: str, model: str) -> Identity:
    upper = model.upper()
    if vendor == "comtech":
        if "570" in upper:
            descr = f"Comtech EF Data {model or 'CDM-570L'} Satellite Modem, Firmware 1.8.1"
            return Identity(descr, oids.COMTECH_CDM570, SERVICES_HOST)
        descr = f"Comtech EF Data {model or 'CDM-625A'} Advanced Satellite Modem, Firmware 1.6.2"
        oid = oids.COMTECH_CDM625 if "625" in upper else oids.LAB_SATELLITE_TERMINAL
        return Identity(descr, oid, SERVICES_HOST)
    if vendor == "idirect":
        return Identity(f"iDirect {model or 'X7'} Remote, iDX 4.1.2.0", oids.IDIRECT, 72)
    descr = f"{vendor} {model} satellite terminal".strip()
    return Identity(descr, oids.LAB_SATELLITE_TERMINAL, SERVICES_HOST)


def _endpoint(vendor: str, model: str) -> Identity:
    if vendor == "cisco":
        descr = (
            f"Cisco Codec\nSoftwareID: ce11.5.1.5\nMCU: Cisco Webex {model or 'Room Kit'}\n"
            "Date: 2023-06-20"
        )
        return Identity(descr, oids.LAB_VIDEO_ENDPOINT, SERVICES_HOST)
    if vendor == "polycom":
        descr = f"Polycom {model or 'RealPresence Group 500'}, Version 6.2.2.1"
        return Identity(descr, oids.LAB_VIDEO_ENDPOINT, SERVICES_HOST)
    if vendor == "huawei":
        descr = f"Huawei {model or 'TE40'} Videoconferencing Endpoint, V600R019C00"
        return Identity(descr, oids.LAB_VIDEO_ENDPOINT, SERVICES_HOST)
    return Identity(f"{vendor} {model} video endpoint".strip(), oids.LAB_VIDEO_ENDPOINT, 72)


def _mcu(vendor: str, model: str) -> Identity:
    if vendor == "huawei":
        descr = f"Huawei {model or 'ViewPoint 8660'} MCU, V100R011C10SPC300"
        return Identity(descr, oids.LAB_MCU, SERVICES_HOST)
    if vendor == "cisco":
        descr = f"Cisco {model or 'TelePresence Server'} MCU, Version 4.4(1.16)"
        return Identity(descr, oids.LAB_MCU, SERVICES_HOST)
    return Identity(f"{vendor} {model} MCU".strip(), oids.LAB_MCU, SERVICES_HOST)


def identity_for(device: Device) -> Identity:
    vendor = device.vendor.strip().lower()
    model = (device.model or "").strip()
    if device.kind is DeviceKind.ROUTER:
        return _router(vendor, model)
    if device.kind is DeviceKind.SATELLITE_TERMINAL:
        return _terminal(vendor, model)
    if device.kind is DeviceKind.VIDEO_ENDPOINT:
        return _endpoint(vendor, model)
    return _mcu(vendor, model)
