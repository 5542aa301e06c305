"""The lab's SNMP face: a lean SNMP v2c/v3 agent per simulated device.

``serve_snmp(net, creds)`` starts one agent per device on its loopback address and returns a
``SnmpFace`` (``close()``, ``stats``). Modules: ``ber`` and ``codec`` (BER and SNMP messages),
``usm`` (SNMPv3 keys, digests, AES), ``mibtree`` and ``views`` (the objects each kind answers),
``identity`` (what a device says it is), ``oids`` (every OID, one place), ``agent`` (request
processing, no I/O), ``face`` (sockets), ``loadgen`` (the throughput measurement).
"""

from lab.snmp.agent import AgentStats
from lab.snmp.face import SnmpFace, SnmpFaceError, serve_snmp
from lab.snmp.usm import Credentials, SnmpCredentialLike

__all__ = [
    "AgentStats",
    "Credentials",
    "SnmpCredentialLike",
    "SnmpFace",
    "SnmpFaceError",
    "serve_snmp",
]
