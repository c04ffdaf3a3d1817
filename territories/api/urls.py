from rest_framework.routers import SimpleRouter

from territories.api.views import TerritoryViewSet, WaitlistViewSet

router = SimpleRouter()
router.register("territories", TerritoryViewSet, basename="territory")
router.register("waitlist", WaitlistViewSet, basename="waitlist")
urlpatterns = router.urls
