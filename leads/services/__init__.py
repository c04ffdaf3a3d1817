"""Writes to leads: filters.py (each trade's quality filters), generation.py (properties become leads),
routing.py (leads go to territory owners within caps), lifecycle.py (every move of a lead, checked
against leads.transitions, with its event), suppressions.py (the do-not-contact list), quality.py (lead
quality: each scoring model version's leads with known outcomes evaluated and recorded as evaluation
runs), pipeline.py (the daily run: score, generate, route, expire)."""
