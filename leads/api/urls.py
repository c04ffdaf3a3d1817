from rest_framework.routers import SimpleRouter

from leads.api.profile import ProfileViewSet
from leads.api.views import LeadViewSet

router = SimpleRouter()
router.register("leads", LeadViewSet, basename="lead")
router.register("profile", ProfileViewSet, basename="profile")
urlpatterns = router.urls
