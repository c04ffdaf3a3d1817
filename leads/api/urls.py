from rest_framework.routers import SimpleRouter

from leads.api.quality import EvaluationRunViewSet
from leads.api.statements import StatementViewSet
from leads.api.views import LeadViewSet

router = SimpleRouter()
router.register("leads", LeadViewSet, basename="lead")
router.register("quality/evaluations", EvaluationRunViewSet, basename="evaluationrun")
router.register("statements", StatementViewSet, basename="statement")
urlpatterns = router.urls
