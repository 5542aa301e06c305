"""Every OID the lab's agents serve or report, in one place, so the agent needs no MIB at run time.

The standard ones come from SNMPv2-MIB, SNMP-FRAMEWORK-MIB, IF-MIB, IP-MIB (RFC 1213
ipAddrTable), SNMP-USER-BASED-SM-MIB and SNMP-MPD-MIB; the satellite, video and MCU objects from
``lab/mibs/TIANDI-LAB-MIB.txt``. ``tests/lab/test_snmp_mib.py`` loads the compiled MIB with
pysnmp and checks that each TIANDI-LAB-MIB name below resolves to the OID given here.
"""

from __future__ import annotations

from typing import Final

from lab.snmp.ber import Oid

# ---- SNMPv2-MIB system group (1.3.6.1.2.1.1) ------------------------------------------------
SYSTEM: Final[Oid] = (1, 3, 6, 1, 2, 1, 1)
SYS_DESCR: Final[Oid] = (*SYSTEM, 1)
SYS_OBJECT_ID: Final[Oid] = (*SYSTEM, 2)
SYS_UPTIME: Final[Oid] = (*SYSTEM, 3)
SYS_CONTACT: Final[Oid] = (*SYSTEM, 4)
SYS_NAME: Final[Oid] = (*SYSTEM, 5)
SYS_LOCATION: Final[Oid] = (*SYSTEM, 6)
SYS_SERVICES: Final[Oid] = (*SYSTEM, 7)

# ---- IF-MIB -----------------------------------------------------------------------------------
IF_NUMBER: Final[Oid] = (1, 3, 6, 1, 2, 1, 2, 1)
IF_ENTRY: Final[Oid] = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_INDEX: Final[Oid] = (*IF_ENTRY, 1)
IF_DESCR: Final[Oid] = (*IF_ENTRY, 2)
IF_TYPE: Final[Oid] = (*IF_ENTRY, 3)
IF_MTU: Final[Oid] = (*IF_ENTRY, 4)
IF_SPEED: Final[Oid] = (*IF_ENTRY, 5)
IF_PHYS_ADDRESS: Final[Oid] = (*IF_ENTRY, 6)
IF_ADMIN_STATUS: Final[Oid] = (*IF_ENTRY, 7)
IF_OPER_STATUS: Final[Oid] = (*IF_ENTRY, 8)
IF_LAST_CHANGE: Final[Oid] = (*IF_ENTRY, 9)
IF_IN_OCTETS: Final[Oid] = (*IF_ENTRY, 10)
IF_IN_UCAST_PKTS: Final[Oid] = (*IF_ENTRY, 11)
IF_IN_DISCARDS: Final[Oid] = (*IF_ENTRY, 13)
IF_IN_ERRORS: Final[Oid] = (*IF_ENTRY, 14)
IF_IN_UNKNOWN_PROTOS: Final[Oid] = (*IF_ENTRY, 15)
IF_OUT_OCTETS: Final[Oid] = (*IF_ENTRY, 16)
IF_OUT_UCAST_PKTS: Final[Oid] = (*IF_ENTRY, 17)
IF_OUT_DISCARDS: Final[Oid] = (*IF_ENTRY, 19)
IF_OUT_ERRORS: Final[Oid] = (*IF_ENTRY, 20)

IFX_ENTRY: Final[Oid] = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF_NAME: Final[Oid] = (*IFX_ENTRY, 1)
IF_IN_MULTICAST_PKTS: Final[Oid] = (*IFX_ENTRY, 2)
IF_IN_BROADCAST_PKTS: Final[Oid] = (*IFX_ENTRY, 3)
IF_OUT_MULTICAST_PKTS: Final[Oid] = (*IFX_ENTRY, 4)
IF_OUT_BROADCAST_PKTS: Final[Oid] = (*IFX_ENTRY, 5)
IF_HC_IN_OCTETS: Final[Oid] = (*IFX_ENTRY, 6)
IF_HC_IN_UCAST_PKTS: Final[Oid] = (*IFX_ENTRY, 7)
IF_HC_IN_MULTICAST_PKTS: Final[Oid] = (*IFX_ENTRY, 8)
IF_HC_IN_BROADCAST_PKTS: Final[Oid] = (*IFX_ENTRY, 9)
IF_HC_OUT_OCTETS: Final[Oid] = (*IFX_ENTRY, 10)
IF_HC_OUT_UCAST_PKTS: Final[Oid] = (*IFX_ENTRY, 11)
IF_HC_OUT_MULTICAST_PKTS: Final[Oid] = (*IFX_ENTRY, 12)
IF_HC_OUT_BROADCAST_PKTS: Final[Oid] = (*IFX_ENTRY, 13)
IF_LINK_UP_DOWN_TRAP_ENABLE: Final[Oid] = (*IFX_ENTRY, 14)
IF_HIGH_SPEED: Final[Oid] = (*IFX_ENTRY, 15)
IF_PROMISCUOUS_MODE: Final[Oid] = (*IFX_ENTRY, 16)
IF_CONNECTOR_PRESENT: Final[Oid] = (*IFX_ENTRY, 17)
IF_ALIAS: Final[Oid] = (*IFX_ENTRY, 18)
IF_COUNTER_DISCONTINUITY_TIME: Final[Oid] = (*IFX_ENTRY, 19)

# ---- IP-MIB ipAddrTable (1.3.6.1.2.1.4.20.1), indexed by the address -------------------------
IP_AD_ENTRY: Final[Oid] = (1, 3, 6, 1, 2, 1, 4, 20, 1)
IP_AD_ENT_ADDR: Final[Oid] = (*IP_AD_ENTRY, 1)
IP_AD_ENT_IF_INDEX: Final[Oid] = (*IP_AD_ENTRY, 2)
IP_AD_ENT_NET_MASK: Final[Oid] = (*IP_AD_ENTRY, 3)

# ---- SNMP-FRAMEWORK-MIB snmpEngine group (1.3.6.1.6.3.10.2.1) --------------------------------
SNMP_ENGINE: Final[Oid] = (1, 3, 6, 1, 6, 3, 10, 2, 1)
SNMP_ENGINE_ID: Final[Oid] = (*SNMP_ENGINE, 1)
SNMP_ENGINE_BOOTS: Final[Oid] = (*SNMP_ENGINE, 2)
SNMP_ENGINE_TIME: Final[Oid] = (*SNMP_ENGINE, 3)
SNMP_ENGINE_MAX_MESSAGE_SIZE: Final[Oid] = (*SNMP_ENGINE, 4)

# ---- counters carried in Report PDUs ---------------------------------------------------------
SNMP_UNKNOWN_CONTEXTS: Final[Oid] = (1, 3, 6, 1, 6, 3, 12, 1, 5, 0)
USM_STATS: Final[Oid] = (1, 3, 6, 1, 6, 3, 15, 1, 1)
USM_STATS_UNSUPPORTED_SEC_LEVELS: Final[Oid] = (*USM_STATS, 1, 0)
USM_STATS_NOT_IN_TIME_WINDOWS: Final[Oid] = (*USM_STATS, 2, 0)
USM_STATS_UNKNOWN_USER_NAMES: Final[Oid] = (*USM_STATS, 3, 0)
USM_STATS_UNKNOWN_ENGINE_IDS: Final[Oid] = (*USM_STATS, 4, 0)
USM_STATS_WRONG_DIGESTS: Final[Oid] = (*USM_STATS, 5, 0)
USM_STATS_DECRYPTION_ERRORS: Final[Oid] = (*USM_STATS, 6, 0)

# ---- enterprise arcs (sysObjectID) -----------------------------------------------------------
ENTERPRISES: Final[Oid] = (1, 3, 6, 1, 4, 1)
CISCO_ISR4331: Final[Oid] = (*ENTERPRISES, 9, 1, 2068)  # CISCO-PRODUCTS-MIB ciscoISR4331
CISCO_ASR1001X: Final[Oid] = (*ENTERPRISES, 9, 1, 1861)  # ciscoASR1001X
CISCO_CSR1000V: Final[Oid] = (*ENTERPRISES, 9, 1, 1537)  # ciscoCSR1000v
COMTECH_CDM570: Final[Oid] = (*ENTERPRISES, 6247, 24)  # ComtechEFData cdm570
COMTECH_CDM625: Final[Oid] = (*ENTERPRISES, 6247, 80)  # ComtechEFData cdm625
IDIRECT: Final[Oid] = (*ENTERPRISES, 13732, 1)  # iDirect enterprise arc (remote/NMS)

# ---- TIANDI-LAB-MIB (lab/mibs/TIANDI-LAB-MIB.txt) --------------------------------------------
# 1.3.6.1.4.1.59999 is a lab-only arc, NOT registered with IANA: never use it on a real network.
TIANDI_LAB_MIB: Final[Oid] = (*ENTERPRISES, 59999)
TIANDI_LAB_OBJECTS: Final[Oid] = (*TIANDI_LAB_MIB, 1)
TIANDI_LAB_PRODUCTS: Final[Oid] = (*TIANDI_LAB_MIB, 2)
LAB_ROUTER: Final[Oid] = (*TIANDI_LAB_PRODUCTS, 1)
LAB_SATELLITE_TERMINAL: Final[Oid] = (*TIANDI_LAB_PRODUCTS, 2)
LAB_VIDEO_ENDPOINT: Final[Oid] = (*TIANDI_LAB_PRODUCTS, 3)
LAB_MCU: Final[Oid] = (*TIANDI_LAB_PRODUCTS, 4)

SATELLITE: Final[Oid] = (*TIANDI_LAB_OBJECTS, 1)
SAT_ESNO: Final[Oid] = (*SATELLITE, 1)
SAT_RX_LEVEL: Final[Oid] = (*SATELLITE, 2)
SAT_TX_POWER: Final[Oid] = (*SATELLITE, 3)
SAT_DEMOD_LOCK: Final[Oid] = (*SATELLITE, 4)
SAT_BUC_ALARM: Final[Oid] = (*SATELLITE, 5)
SAT_LNB_ALARM: Final[Oid] = (*SATELLITE, 6)
SAT_MODCOD: Final[Oid] = (*SATELLITE, 7)
SAT_TX_ENABLED: Final[Oid] = (*SATELLITE, 8)
SAT_TX_RATE: Final[Oid] = (*SATELLITE, 9)
SAT_RX_RATE: Final[Oid] = (*SATELLITE, 10)
SAT_ALARMS: Final[Oid] = (*SATELLITE, 11)
SAT_DATA_RATE: Final[Oid] = (*SATELLITE, 12)

VIDEO: Final[Oid] = (*TIANDI_LAB_OBJECTS, 2)
VID_REGISTRATION_STATE: Final[Oid] = (*VIDEO, 1)
VID_DEFAULT_CALL_RATE: Final[Oid] = (*VIDEO, 2)
VID_ACTIVE_CALLS: Final[Oid] = (*VIDEO, 3)
VID_CALL_ENTRY: Final[Oid] = (*VIDEO, 4, 1)  # INDEX { vidCallIndex } (column 1, not-accessible)
VID_CALL_REMOTE: Final[Oid] = (*VID_CALL_ENTRY, 2)
VID_CALL_STATE: Final[Oid] = (*VID_CALL_ENTRY, 3)
VID_CALL_RATE: Final[Oid] = (*VID_CALL_ENTRY, 4)
VID_CALL_TX_BITRATE: Final[Oid] = (*VID_CALL_ENTRY, 5)
VID_CALL_RX_BITRATE: Final[Oid] = (*VID_CALL_ENTRY, 6)
VID_CALL_PACKET_LOSS: Final[Oid] = (*VID_CALL_ENTRY, 7)
VID_CALL_JITTER: Final[Oid] = (*VID_CALL_ENTRY, 8)
VID_CALL_DURATION: Final[Oid] = (*VID_CALL_ENTRY, 9)

MCU: Final[Oid] = (*TIANDI_LAB_OBJECTS, 3)
MCU_PORTS_TOTAL: Final[Oid] = (*MCU, 1)
MCU_PORTS_IN_USE: Final[Oid] = (*MCU, 2)
MCU_ACTIVE_CONFERENCES: Final[Oid] = (*MCU, 3)
MCU_CONF_ENTRY: Final[Oid] = (*MCU, 4, 1)  # INDEX { mcuConfIndex }
MCU_CONF_NAME: Final[Oid] = (*MCU_CONF_ENTRY, 2)
MCU_CONF_PARTICIPANTS: Final[Oid] = (*MCU_CONF_ENTRY, 3)
MCU_PART_ENTRY: Final[Oid] = (*MCU, 5, 1)  # INDEX { mcuConfIndex, mcuPartIndex }
MCU_PART_NAME: Final[Oid] = (*MCU_PART_ENTRY, 2)
MCU_PART_STATE: Final[Oid] = (*MCU_PART_ENTRY, 3)
MCU_PART_CALL_RATE: Final[Oid] = (*MCU_PART_ENTRY, 4)

# MIB object name -> OID, for the TIANDI-LAB-MIB objects (the MIB test checks these).
TIANDI_LAB_NAMES: Final[dict[str, Oid]] = {
    "tiandiLabMIB": TIANDI_LAB_MIB,
    "tiandiLabRouter": LAB_ROUTER,
    "tiandiLabSatelliteTerminal": LAB_SATELLITE_TERMINAL,
    "tiandiLabVideoEndpoint": LAB_VIDEO_ENDPOINT,
    "tiandiLabMcu": LAB_MCU,
    "satModemEsNo": SAT_ESNO,
    "satModemRxLevel": SAT_RX_LEVEL,
    "satModemTxPower": SAT_TX_POWER,
    "satModemDemodLock": SAT_DEMOD_LOCK,
    "satModemBucAlarm": SAT_BUC_ALARM,
    "satModemLnbAlarm": SAT_LNB_ALARM,
    "satModemModcod": SAT_MODCOD,
    "satModemTxEnabled": SAT_TX_ENABLED,
    "satModemTxRate": SAT_TX_RATE,
    "satModemRxRate": SAT_RX_RATE,
    "satModemAlarms": SAT_ALARMS,
    "satModemDataRate": SAT_DATA_RATE,
    "vidRegistrationState": VID_REGISTRATION_STATE,
    "vidDefaultCallRate": VID_DEFAULT_CALL_RATE,
    "vidActiveCalls": VID_ACTIVE_CALLS,
    "vidCallEntry": VID_CALL_ENTRY,
    "vidCallRemote": VID_CALL_REMOTE,
    "vidCallState": VID_CALL_STATE,
    "vidCallRate": VID_CALL_RATE,
    "vidCallTxBitrate": VID_CALL_TX_BITRATE,
    "vidCallRxBitrate": VID_CALL_RX_BITRATE,
    "vidCallPacketLoss": VID_CALL_PACKET_LOSS,
    "vidCallJitter": VID_CALL_JITTER,
    "vidCallDuration": VID_CALL_DURATION,
    "mcuPortsTotal": MCU_PORTS_TOTAL,
    "mcuPortsInUse": MCU_PORTS_IN_USE,
    "mcuActiveConferences": MCU_ACTIVE_CONFERENCES,
    "mcuConfEntry": MCU_CONF_ENTRY,
    "mcuConfName": MCU_CONF_NAME,
    "mcuConfParticipants": MCU_CONF_PARTICIPANTS,
    "mcuPartEntry": MCU_PART_ENTRY,
    "mcuPartName": MCU_PART_NAME,
    "mcuPartState": MCU_PART_STATE,
    "mcuPartCallRate": MCU_PART_CALL_RATE,
}

# Enumerations and scales the MIB defines (values as carried on the wire).
TRUTH_TRUE = 1
TRUTH_FALSE = 2
IF_STATUS_UP = 1
IF_STATUS_DOWN = 2
DEMOD_LOCKED = 1
DEMOD_UNLOCKED = 2
REGISTERED = 1
UNREGISTERED = 2
CALL_CONNECTED = 3
PART_CONNECTED = 1
PART_DISCONNECTED = 2
# satModemAlarms BITS: bit 0 is the most significant bit of the first octet.
ALARM_BUC = 0
ALARM_LNB = 1
ALARM_DEMOD_UNLOCKED = 2
ALARM_TX_MUTED = 3
