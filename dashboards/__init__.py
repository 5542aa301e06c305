"""Grafana dashboards as code and their publisher (coming with the NOC view issue)."""
