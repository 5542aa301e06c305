"""Request processing: one datagram in, one datagram (or nothing) out. No I/O here.

``SnmpAgent.handle`` does what a device's SNMP engine does with a packet:

- v2c: the community must match the device's, else the packet is dropped (real devices stay
  silent); GET, GETNEXT, GETBULK are answered; SET gets noAccess (the lab is read-only).
- v3 (USM, RFC 3414 3.2): unknown or empty engine ID → Report usmStatsUnknownEngineIDs (how
  clients discover the engine), unknown user → usmStatsUnknownUserNames, a level the user does
  not have → usmStatsUnsupportedSecLevels, bad digest → usmStatsWrongDigests, stale
  boots/time → an authenticated usmStatsNotInTimeWindows, undecryptable → usmStatsDecryptionErrors;
  a level below the user's (e.g. authNoPriv for an authPriv user) → authorizationError.
- replies never exceed the device's maximum message size (``MAX_MESSAGE_SIZE``, and a v3
  client's msgMaxSize): GETBULK is cut short, GET/GETNEXT answer tooBig.

Every outcome is counted in ``AgentStats``; a malformed packet is a count, never an exception.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from inventory.enums import SnmpVersion
from lab.snmp import ber, codec, oids, usm
from lab.snmp.ber import DecodeError, Oid
from lab.snmp.codec import Pdu, V3Message
from lab.snmp.mibtree import Ctx, DeviceInfo, View
from lab.state import Device, LabNetwork

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

MAX_BULK_VARBINDS = 2048  # CPU bound on one GETBULK, far above what fits in a datagram
# Bytes of a response besides its varbinds, with every length field at its widest (3-octet
# lengths, 4-octet integers): v2c adds the community, v3 the engine ID (twice), user and digest.
V2C_FIXED_OVERHEAD = 36
V3_FIXED_OVERHEAD = 110
LEVEL_NO_AUTH = 0
LEVEL_AUTH = codec.FLAG_AUTH
LEVEL_AUTH_PRIV = codec.FLAG_AUTH | codec.FLAG_PRIV


@dataclass
class AgentStats:
    """What the agents saw: datagrams in, replies out (reports among them), drops by reason."""

    requests: int = 0
    responses: int = 0
    reports: Counter[str] = field(default_factory=Counter)
    drops: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, int]:
        out = {"requests": self.requests, "responses": self.responses}
        out.update({f"report_{k}": v for k, v in sorted(self.reports.items())})
        out.update({f"drop_{k}": v for k, v in sorted(self.drops.items())})
        return out


class DeviceAgent:
    """One device's SNMP engine: its identity, credentials, keys and engine boots counter."""

    __slots__ = (
        "_boot_seen",
        "_keys",
        "boots",
        "community",
        "creds",
        "device",
        "info",
        "level",
        "view",
    )

    def __init__(
        self,
        device: Device,
        info: DeviceInfo,
        view: View,
        creds: usm.SnmpCredentialLike,
        boots: int = 1,
    ) -> None:
        self.device = device
        self.info = info
        self.view = view
        self.creds = creds
        self.community = creds.community.encode() if creds.community is not None else None
        self.level = LEVEL_NO_AUTH
        if creds.version is SnmpVersion.V3:
            if creds.auth_key is not None:
                self.level = LEVEL_AUTH_PRIV if creds.priv_key is not None else LEVEL_AUTH
            self._keys: usm.UsmKeys | None = usm.usm_keys(creds, info.engine_id)
        else:
            self._keys = None
        self.boots = min(max(boots, 1), usm.MAX_BOOTS)
        self._boot_seen = device.boot_time

    @property
    def keys(self) -> usm.UsmKeys | None:
        return self._keys

    def engine_boots(self) -> int:
        """snmpEngineBoots: one more each time the device's boot time moves (a reboot)."""
        if self.device.boot_time != self._boot_seen:
            self._boot_seen = self.device.boot_time
            self.boots = min(self.boots + 1, usm.MAX_BOOTS)
        return self.boots

    def engine_time(self, now: float) -> int:
        return max(0, min(int(now - self.device.boot_time), usm.MAX_BOOTS))


class SnmpAgent:
    """Answers datagrams for any ``DeviceAgent``; holds the counters and the AES salt."""

    def __init__(self, net: LabNetwork, stats: AgentStats | None = None) -> None:
        self.net = net
        self.stats = stats if stats is not None else AgentStats()
        self.usm_counters: Counter[Oid] = Counter()
        self._salt = usm.SaltCounter()

    # ---- entry point ------------------------------------------------------------------------

    def handle(self, dev: DeviceAgent, data: bytes) -> bytes | None:
        self.stats.requests += 1
        if not dev.device.powered:
            self.stats.drops["powered_off"] += 1
            return None
        try:
            version, pos, end = codec.message_version(data)
            if version == codec.VERSION_2C:
                reply = self._v2c(dev, data, pos, end)
            elif version == codec.VERSION_3:
                reply = self._v3(dev, data, pos, end)
            else:
                self.stats.drops["unsupported_version"] += 1
                return None
        except DecodeError as err:
            self.stats.drops["malformed"] += 1
            log.debug("device %s: malformed SNMP packet dropped (%s)", dev.device.name, err.reason)
            return None
        if reply is not None:
            self.stats.responses += 1
        return reply

    # ---- v2c --------------------------------------------------------------------------------

    def _v2c(self, dev: DeviceAgent, data: bytes, pos: int, end: int) -> bytes | None:
        msg = codec.decode_community(data, pos, end, codec.VERSION_2C)
        if dev.community is None or msg.community != dev.community:
            self.stats.drops["bad_community"] += 1
            return None
        pdu = msg.pdu
        if pdu.tag not in _REQUESTS:
            self.stats.drops["unexpected_pdu"] += 1
            return None
        overhead = V2C_FIXED_OVERHEAD + len(msg.community)
        status, index, varbinds = self._answer(dev, pdu, dev.info.max_message_size - overhead)
        return codec.encode_community(
            codec.VERSION_2C,
            msg.community,
            codec.encode_pdu(codec.RESPONSE, pdu.request_id, status, index, varbinds),
        )

    # ---- v3 ---------------------------------------------------------------------------------

    def _v3(self, dev: DeviceAgent, data: bytes, pos: int, end: int) -> bytes | None:
        msg = codec.decode_v3(data, pos, end)
        if msg.security_model != codec.USM_SECURITY_MODEL:
            self.stats.drops["unknown_security_model"] += 1
            return None
        level = msg.flags & LEVEL_AUTH_PRIV
        if level == codec.FLAG_PRIV:
            self.stats.drops["invalid_msg_flags"] += 1
            return None
        reportable = bool(msg.flags & codec.FLAG_REPORTABLE)
        info = dev.info
        if msg.engine_id != info.engine_id:
            return self._report(dev, msg, oids.USM_STATS_UNKNOWN_ENGINE_IDS, reportable)
        keys = dev.keys
        if keys is None or msg.user_name != keys.user_name:
            return self._report(dev, msg, oids.USM_STATS_UNKNOWN_USER_NAMES, reportable)
        if level > dev.level:
            return self._report(dev, msg, oids.USM_STATS_UNSUPPORTED_SEC_LEVELS, reportable)
        now = self.net.now()
        boots = dev.engine_boots()
        engine_time = dev.engine_time(now)
        if level & codec.FLAG_AUTH:
            if not usm.verify(keys, data, msg.auth_params_offset, msg.auth_params):
                return self._report(dev, msg, oids.USM_STATS_WRONG_DIGESTS, reportable)
            if (
                msg.engine_boots != boots
                or boots == usm.MAX_BOOTS
                or abs(msg.engine_time - engine_time) > usm.TIME_WINDOW_S
            ):
                return self._report(
                    dev, msg, oids.USM_STATS_NOT_IN_TIME_WINDOWS, reportable, keys=keys
                )
        scoped = msg.scoped
        if level & codec.FLAG_PRIV:
            if len(msg.priv_params) != 8 or msg.encrypted is None:
                return self._report(dev, msg, oids.USM_STATS_DECRYPTION_ERRORS, reportable)
            plain = usm.decrypt(
                keys, msg.engine_boots, msg.engine_time, msg.priv_params, msg.encrypted
            )
            try:
                scoped = codec.decode_scoped_pdu(plain, 0, len(plain), allow_trailing=True)
            except DecodeError:
                return self._report(dev, msg, oids.USM_STATS_DECRYPTION_ERRORS, reportable)
        if scoped is None:
            raise DecodeError("encrypted_without_priv")
        pdu = scoped.pdu
        if pdu.tag not in _REQUESTS:
            self.stats.drops["unexpected_pdu"] += 1
            return None
        if scoped.context_name:
            return self._report(
                dev, msg, oids.SNMP_UNKNOWN_CONTEXTS, reportable, pdu=pdu, keys=keys, level=level
            )
        max_size = min(info.max_message_size, msg.max_size)
        if level < dev.level:
            status, index, varbinds = codec.AUTHORIZATION_ERROR, 0, b""
        else:
            budget = max_size - self._v3_overhead(dev, msg)
            status, index, varbinds = self._answer(dev, pdu, budget)
        body = codec.encode_pdu(codec.RESPONSE, pdu.request_id, status, index, varbinds)
        return self._v3_message(dev, msg, body, level, boots, engine_time, keys)

    @staticmethod
    def _v3_overhead(dev: DeviceAgent, msg: V3Message) -> int:
        """Upper bound of a v3 response's bytes besides its varbinds (every length maximal)."""
        mac_len = dev.keys.auth.mac_len if dev.keys and dev.keys.auth else 0
        return V3_FIXED_OVERHEAD + 2 * len(dev.info.engine_id) + len(msg.user_name) + mac_len

    def _v3_message(
        self,
        dev: DeviceAgent,
        msg: V3Message,
        pdu_bytes: bytes,
        level: int,
        boots: int,
        engine_time: int,
        keys: usm.UsmKeys | None,
    ) -> bytes:
        scoped = codec.encode_scoped_pdu(dev.info.engine_id, b"", pdu_bytes)
        priv_params = b""
        if level & codec.FLAG_PRIV and keys is not None:
            priv_params = self._salt.next()
            scoped = ber.tlv(
                ber.OCTET_STRING, usm.encrypt(keys, boots, engine_time, priv_params, scoped)
            )
        auth = keys.auth if keys is not None and level & codec.FLAG_AUTH else None
        message, offset = codec.encode_v3(
            msg_id=msg.msg_id,
            max_size=dev.info.max_message_size,
            flags=level,
            engine_id=dev.info.engine_id,
            engine_boots=boots,
            engine_time=engine_time,
            user_name=msg.user_name,
            auth_len=auth.mac_len if auth is not None else 0,
            priv_params=priv_params,
            msg_data=scoped,
        )
        if auth is not None and keys is not None:
            message = usm.sign(keys, message, offset)
        return message

    def _report(
        self,
        dev: DeviceAgent,
        msg: V3Message,
        counter: Oid,
        reportable: bool,
        *,
        pdu: Pdu | None = None,
        keys: usm.UsmKeys | None = None,
        level: int = LEVEL_NO_AUTH,
    ) -> bytes | None:
        """A Report PDU carrying ``counter`` (RFC 3412 7.1 step 3), if the request allows one."""
        self.usm_counters[counter] += 1
        reason = _REPORT_REASONS[counter]
        if not reportable:
            self.stats.drops[reason] += 1
            return None
        self.stats.reports[reason] += 1
        if pdu is None and msg.scoped is not None:
            pdu = msg.scoped.pdu
        request_id = pdu.request_id if pdu is not None else 0
        if counter == oids.USM_STATS_NOT_IN_TIME_WINDOWS:
            level = LEVEL_AUTH  # RFC 3414 3.2 step 7b: authenticated, so the client can trust it
        now = self.net.now()
        body = codec.encode_pdu(
            codec.REPORT,
            request_id,
            0,
            0,
            codec.varbind(ber.oid_tlv(counter), ber.counter32(self.usm_counters[counter])),
        )
        return self._v3_message(
            dev, msg, body, level, dev.engine_boots(), dev.engine_time(now), keys
        )

    # ---- PDU processing ---------------------------------------------------------------------

    def _answer(self, dev: DeviceAgent, pdu: Pdu, budget: int) -> tuple[int, int, bytes]:
        """(error-status, error-index, encoded varbinds) for a request PDU within ``budget``."""
        ctx = Ctx(self.net, dev.device, dev.info, self.net.now(), dev.engine_boots())
        view = dev.view
        if pdu.tag == codec.GET_BULK:
            return 0, 0, self._bulk(ctx, view, pdu, budget)
        out: list[bytes] = []
        if pdu.tag == codec.GET:
            for vb in pdu.varbinds:
                out.append(codec.varbind(vb.raw_oid, view.get(ctx, vb.oid)))
        elif pdu.tag == codec.GET_NEXT:
            for vb in pdu.varbinds:
                found = view.next(ctx, vb.oid)
                if found is None:
                    out.append(codec.varbind(vb.raw_oid, ber.END_OF_MIB_VIEW_TLV))
                else:
                    out.append(codec.varbind(ber.oid_tlv(found[0]), found[1]))
        else:  # SET: the lab's agents are read-only
            echo = b"".join(codec.varbind(vb.raw_oid, ber.NULL_TLV) for vb in pdu.varbinds)
            return codec.NO_ACCESS, 1 if pdu.varbinds else 0, echo
        encoded = b"".join(out)
        if len(encoded) > budget:
            self.stats.drops["too_big"] += 1
            echo = b"".join(codec.varbind(vb.raw_oid, ber.NULL_TLV) for vb in pdu.varbinds)
            return codec.TOO_BIG, 0, echo if len(echo) <= budget else b""
        return codec.NO_ERROR, 0, encoded

    def _bulk(self, ctx: Ctx, view: View, pdu: Pdu, budget: int) -> bytes:
        varbinds = pdu.varbinds
        non_repeaters = min(max(pdu.error_status, 0), len(varbinds))
        repetitions = max(pdu.error_index, 0)
        out: list[bytes] = []
        size = 0

        def add(item: bytes) -> bool:
            nonlocal size
            if size + len(item) > budget or len(out) >= MAX_BULK_VARBINDS:
                return False
            out.append(item)
            size += len(item)
            return True

        for vb in varbinds[:non_repeaters]:
            found = view.next(ctx, vb.oid)
            item = (
                codec.varbind(vb.raw_oid, ber.END_OF_MIB_VIEW_TLV)
                if found is None
                else codec.varbind(ber.oid_tlv(found[0]), found[1])
            )
            if not add(item):
                return b"".join(out)
        cursors: list[Oid] = [vb.oid for vb in varbinds[non_repeaters:]]
        ended = [False] * len(cursors)
        for _ in range(repetitions):
            if not cursors or all(ended):
                break
            for j, cursor in enumerate(cursors):
                found = None if ended[j] else view.next(ctx, cursor)
                if found is None:
                    ended[j] = True
                    item = codec.varbind(ber.oid_tlv(cursor), ber.END_OF_MIB_VIEW_TLV)
                else:
                    cursors[j] = found[0]
                    item = codec.varbind(ber.oid_tlv(found[0]), found[1])
                if not add(item):
                    return b"".join(out)
        return b"".join(out)


_REQUESTS = frozenset({codec.GET, codec.GET_NEXT, codec.GET_BULK, codec.SET})
_REPORT_REASONS: dict[Oid, str] = {
    oids.USM_STATS_UNKNOWN_ENGINE_IDS: "usm_unknown_engine_id",
    oids.USM_STATS_UNKNOWN_USER_NAMES: "usm_unknown_user",
    oids.USM_STATS_UNSUPPORTED_SEC_LEVELS: "usm_unsupported_sec_level",
    oids.USM_STATS_WRONG_DIGESTS: "usm_wrong_digest",
    oids.USM_STATS_NOT_IN_TIME_WINDOWS: "usm_not_in_time_window",
    oids.USM_STATS_DECRYPTION_ERRORS: "usm_decryption_error",
    oids.SNMP_UNKNOWN_CONTEXTS: "unknown_context",
}
