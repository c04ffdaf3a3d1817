"""The operations API: job runs (start one, follow it)."""
