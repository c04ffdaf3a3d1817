"""Writes to contractors: contractors.py (trades, users, status, webhook secret), api_keys.py."""
