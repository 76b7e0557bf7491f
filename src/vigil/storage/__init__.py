"""Persistence: the ``Store`` protocol and its backends. All SQL lives in this package."""
