"""The embedded platform: replicas as local processes behind a health-checked router."""
