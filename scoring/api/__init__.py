"""The scoring API: storm reports staff send as they arrive (the storm fast path's way in)."""
