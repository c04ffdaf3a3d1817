"""What every endpoint of the REST API shares: the JSON error format, throttling per key and per address,
pagination, permissions and the schema's hooks. Each app's `api/` package holds its own serializers, views
and URLs, mounted under /api/v1/ by leadengine/urls.py; API-key authentication is the contractors app's
(contractors/api/authentication.py)."""
