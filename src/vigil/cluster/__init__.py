"""Coordination between components and instances: the message bus (in-process now;
Redis-backed for a fleet later)."""
