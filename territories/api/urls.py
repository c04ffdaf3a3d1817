from rest_framework.routers import SimpleRouter

from territories.api.views import ClaimRequestViewSet, TerritoryViewSet, WaitlistViewSet

router = SimpleRouter()
router.register("territories", TerritoryViewSet, basename="territory")
router.register("waitlist", WaitlistViewSet, basename="waitlist")
router.register("claim-requests", ClaimRequestViewSet, basename="claimrequest")
urlpatterns = router.urls
