from rest_framework import permissions


class IsAuthenticatedClient(permissions.BasePermission):
    """A contractor's key or member, or staff: what each view's `visible_to` queryset then scopes."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)
