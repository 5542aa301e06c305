"""SNMP polling: transports (pysnmp, and a lean v2c fast path), profiles, the poll engine."""
