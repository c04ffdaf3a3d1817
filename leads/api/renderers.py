"""The lead list's CSV format in content negotiation (leads/export.py writes the file).

LeadCsvRenderer only selects the export: the list answers the export itself as a StreamingHttpResponse.
Whatever reaches the renderer is an error (a bad filter, no credentials, a throttle), and an API error is
JSON whatever format was asked."""

from rest_framework.renderers import BaseRenderer, JSONRenderer

from core.api.renderers import FastJSONRenderer
from core.api.schema import ApiSchema


class LeadCsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only an error gets here (the export streams past renderers): JSON, as every API error.
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = JSONRenderer.media_type
        return FastJSONRenderer().render(data, JSONRenderer.media_type, renderer_context)


class LeadListSchema(ApiSchema):
    """The list answers JSON or CSV (its 200 says both, by extend_schema); its errors are JSON only."""

    def map_renderers(self, attribute: str) -> list:
        csv_only = getattr(LeadCsvRenderer, attribute)
        return [value for value in super().map_renderers(attribute) if value != csv_only]
