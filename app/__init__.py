"""Accounts API: the core services and the composition root."""
