from rest_framework.routers import SimpleRouter

from leads.api.views import LeadViewSet

router = SimpleRouter()
router.register("leads", LeadViewSet, basename="lead")
urlpatterns = router.urls
