"""A lead's figures are answered to the decimals they mean (leads.representation.DECIMALS), never with a
floating-point tail: a priority PostgreSQL computes as 99.17500000000001 reads 99.175 in the lead, the list,
the CSV export and a webhook's body, while the database keeps what it computed."""

import csv
import io
import json

from leads.export import HEADER
from leads.models import Lead
from leads.representation import DECIMALS, leads_represented
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from scoring.models import Property, Score
from tests.leads.factories import api_client, owner, scored_home

URL = "/api/v1/leads/"


class FloatText(str):
    """A float of a JSON text as it is written there."""


def floats_by_key(text: str) -> dict[str, list[str]]:
    """Every float written in the JSON `text`, by the key it is the value of, as written."""
    found: dict[str, list[str]] = {}

    def pairs(items):
        for key, value in items:
            if isinstance(value, FloatText):
                found.setdefault(key, []).append(str(value))
        return dict(items)

    json.loads(text, parse_float=FloatText, object_pairs_hook=pairs)
    return found


def decimals(text: str) -> int:
    return len(text.partition(".")[2])


def test_a_leads_floats_are_answered_to_their_decimals_in_json_csv_and_webhook_body(roofing):
    acme = owner(roofing, "80202")
    prop = scored_home(roofing, score=99.66, urgency=97.72, zip_code="80202")
    Property.objects.filter(pk=prop.pk).update(latitude=39.808384123456, longitude=-105.09482155, bathrooms=2.5)
    reasons = [
        {"feature": "roof_age", "value": 23, "points": 35.0, "text": "Roof is 23 years old"},
        {"feature": "days_since_hail", "value": 12, "points": 14.666666666666666, "text": "Hail 12 days ago"},
    ]
    Score.objects.filter(property=prop).update(reasons=reasons)
    leads_generate(trade=roofing)
    leads_route()
    lead = Lead.objects.get(property=prop)
    assert lead.priority == 99.17500000000001  # 0.75 x 99.66 + 0.25 x 97.72 in floating point, as stored
    client = api_client(acme)

    detail = client.get(f"{URL}{lead.pk}/")
    listed = client.get(URL)
    exported = client.get(URL, {"format": "csv"})

    assert detail.status_code == listed.status_code == 200
    expected = {
        "score": ["99.66"],
        "urgency": ["97.72"],
        "priority": ["99.175"],
        "points": ["35.0", "14.67"],
        "latitude": ["39.808384"],
        "longitude": ["-105.094822"],
        "bathrooms": ["2.5"],
    }
    assert floats_by_key(detail.content.decode()) == expected
    assert floats_by_key(json.dumps(listed.json()["results"])) == expected
    # A webhook posts the same body (leads.services.webhooks), written by json.dumps.
    assert floats_by_key(json.dumps(leads_represented([lead.pk]))) == expected
    for key, texts in expected.items():
        assert all(decimals(text) <= DECIMALS[key] for text in texts), (key, texts)
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert rows[0] == HEADER
    row = dict(zip(rows[0], rows[1], strict=True))
    assert (row["score"], row["urgency"], row["priority"]) == ("99.66", "97.72", "99.175")
    lead.refresh_from_db()
    assert lead.priority == 99.17500000000001  # shown rounded, stored as computed
