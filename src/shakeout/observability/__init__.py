"""Metrics, alert rules and alert routing of the embedded platform (docs/observability.md)."""
