"""SNMP polling, link probes, link health, alarms and metric sinks."""
