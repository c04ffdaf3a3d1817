from rest_framework.routers import SimpleRouter

from scoring.api.storms import StormViewSet

router = SimpleRouter()
router.register("storms", StormViewSet, basename="storms")
urlpatterns = router.urls
