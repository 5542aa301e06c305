"""Tiandi HTTP API: auth, roles, routers per resource, audit."""
