"""SNMP polling, link probes, link health and metric sinks (coming with the Monitoring issue)."""
