"""Factories and helpers for contractors and territories tests."""

import importlib

import factory

from contractors.models import Contractor, ContractorTrade
from scoring.models import Trade


def seeded_trades() -> dict[str, Trade]:
    """The trades seeded by migration, by slug; re-created when a transactional test flushed them."""
    seed = importlib.import_module("scoring.migrations.0002_seed_trades")
    return {
        slug: Trade.objects.get_or_create(slug=slug, defaults={"name": name, "permit_keywords": keywords})[0]
        for slug, name, keywords in seed.TRADES
    }


class ContractorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contractor
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Contractor {n:02d}")
    slug = factory.Sequence(lambda n: f"contractor-{n:02d}")
    contact_email = factory.Sequence(lambda n: f"sales{n}@example.com")
    time_zone = "America/Denver"

    @factory.post_generation
    def trades(contractor, create, extracted, **kwargs):
        for trade in extracted or ():
            ContractorTrade.objects.create(contractor=contractor, trade=trade)
