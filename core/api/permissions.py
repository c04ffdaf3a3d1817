from rest_framework import permissions


class IsAuthenticatedClient(permissions.BasePermission):
    """A contractor's key or member, or staff: what each view's selectors then scope by its caller."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)


class IsStaff(permissions.BasePermission):
    """Staff only (their session or their own key): a contractor's key is refused with 403."""

    message = "Only staff may do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
