"""SSH device drivers, the failover engine and conference orchestration (coming with the Failover issue)."""
