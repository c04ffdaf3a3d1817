"""The scoring admin, one module per screen: the market's data (market), imports, scoring models, their
evaluation runs, and scoring runs with the scores they write. Imported here so that the admin site
registers them all."""

from scoring.admin import evaluations, imports, market, scores, scoring_models
from scoring.admin.market import PropertyAdmin

__all__ = ["PropertyAdmin", "evaluations", "imports", "market", "scores", "scoring_models"]
