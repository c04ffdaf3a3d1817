"""Writes to territories: claims.py (claiming, and the checks and locks all writes share), ownership.py
(release, transfer), waitlist.py (queue, offers, expiry), demo.py (demo contractors and territories)."""
