"""`make screenshots`' walk (demo/screenshots.py) on the browser tests' market: every page answers and is
taken whole at 1440 px (none wider than the window), and the scoring model's shot is of a draft made from
the active version by its button, one weight changed. (The command itself serves the demo database; its walk
is this one.)"""

import struct

from demo.screenshots import screenshots_take, shots_chosen
from scoring.models import ScoringModel
from tests.browser.conftest import PASSWORD, user


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_screenshot_walk_takes_every_page_whole(browser, live_server, market, tmp_path):
    user("shots", is_superuser=True)
    shots = shots_chosen()
    assert [shot.name for shot in shots] == ["dashboard", "lead", "coverage", "scoring-model-draft"]
    drafts = ScoringModel.objects.filter(status=ScoringModel.Status.DRAFT).count()

    taken = screenshots_take(
        browser, base_url=live_server.url, username="shots", password=PASSWORD, shots=shots, out_dir=tmp_path
    )

    assert [path.name for path in taken] == [f"{shot.name}.png" for shot in shots]
    for path in taken:
        assert png_size(path.read_bytes())[0] == 1440, path.name  # nothing wider than the window
        assert png_size(path.read_bytes())[1] >= 900, path.name
    assert ScoringModel.objects.filter(status=ScoringModel.Status.DRAFT).count() == drafts + 1
    draft = ScoringModel.objects.filter(status=ScoringModel.Status.DRAFT).latest("pk")
    active = ScoringModel.objects.get(trade=draft.trade, status=ScoringModel.Status.ACTIVE)
    weights = [list(model.factors.order_by("position").values_list("weight", flat=True)) for model in (active, draft)]
    assert weights[1] == [weights[0][0] * 1.5, *weights[0][1:]]  # the walk changed one weight
