"""Composition root: settings, the tiandi CLI and process wiring."""
