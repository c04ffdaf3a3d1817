"""The leads admin, one module per screen: leads (read-only; every move through the lifecycle services),
each trade's quality filters, the do-not-contact list, money (price lists and the ledger). Imported here so
that the admin site registers them all."""

from leads.admin import leads, money, quality_filters, suppressions

__all__ = ["leads", "money", "quality_filters", "suppressions"]
