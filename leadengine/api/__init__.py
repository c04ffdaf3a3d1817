"""What every endpoint of the REST API shares: API-key authentication, who the caller is, the JSON error
format, throttling per key and per address, and pagination. Each app's `api/` package holds its own
serializers, views and URLs, mounted under /api/v1/ by leadengine/urls.py."""
