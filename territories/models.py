"""territories: models arrive with the issue that builds this domain (see README, Architecture)."""
