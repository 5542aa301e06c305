"""Tiandi inventory: sites, devices, links, credential profiles — the source of truth."""
