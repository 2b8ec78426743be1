"""Sandbox backends: ``local`` (warm fork-server), ``docker`` (the same executor in containers), ``remote``."""
