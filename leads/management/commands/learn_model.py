from django.core.management.base import BaseCommand, CommandError

from leads.errors import LearningRefused
from leads.services.learning import model_learn
from scoring.selectors import trades_named


class Command(BaseCommand):
    help = (
        "Learn a new draft version of a trade's scoring model from its leads' outcomes, backtested on the newest "
        "days beside the active version; activate it in the admin (or let LEARN_AUTO_ACTIVATE do it when it wins)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--trade", required=True, metavar="SLUG", help="The trade.")
        parser.add_argument(
            "--test-share",
            type=float,
            default=0.25,
            help="Share of the newest days held back to test on (default 0.25).",
        )

    def handle(self, *args, trade, test_share, **options):
        if not 0 < test_share < 1:
            raise CommandError("--test-share must be between 0 and 1")
        try:
            (chosen,) = trades_named([trade])
        except ValueError as error:
            raise CommandError(str(error)) from None
        try:
            learned = model_learn(trade=chosen, test_share=test_share)
        except LearningRefused as error:
            raise CommandError(str(error)) from None
        self.stdout.write(str(learned))
        if learned.model is not None:
            self.stdout.write("Factors (weight, feature, transform, params, reason):")
            for factor in learned.model.factors.order_by("position"):
                self.stdout.write(
                    f"  {factor.weight:6.2f}  {factor.feature} {factor.transform} {factor.params}  {factor.reason}"
                )
