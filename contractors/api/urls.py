from rest_framework.routers import SimpleRouter

from contractors.api.profile import ProfileViewSet

router = SimpleRouter()
router.register("profile", ProfileViewSet, basename="profile")
urlpatterns = router.urls
