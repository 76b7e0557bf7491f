"""Alerting: rules evaluated on the ingest stream, alert lifecycle, flood control,
escalation and notification channels."""
