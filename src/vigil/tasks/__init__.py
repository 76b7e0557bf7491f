"""Workflow analytics: task events, performance and bottleneck reports, their cache."""
