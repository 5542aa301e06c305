"""Failover: the per-site state machine (pure), its policy, the engine around it, approvals."""
