"""SSH device drivers, the failover engine, conference orchestration and the audit trail."""
