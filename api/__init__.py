"""Tiandi HTTP API: auth, roles, routers per resource, audit."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
