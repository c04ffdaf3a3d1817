import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from demo.users import demo_user_ensure


@pytest.fixture
def debug(settings):
    settings.DEBUG = True  # the demo login exists on development machines only


@pytest.mark.django_db
def test_demo_user_is_a_staff_superuser_with_the_published_password(debug):
    username, created = demo_user_ensure()
    user = get_user_model().objects.get(username=username)
    assert (username, created, user.is_staff, user.is_superuser) == ("demo", True, True, True)
    assert user.check_password("demo")


@pytest.mark.django_db
def test_demo_user_is_repaired_not_duplicated(debug):
    demo_user_ensure()
    get_user_model().objects.filter(username="demo").update(is_staff=False, is_active=False)
    username, created = demo_user_ensure()
    user = get_user_model().objects.get(username=username)
    assert (created, user.is_staff, user.is_active, get_user_model().objects.count()) == (False, True, True, 1)


@pytest.mark.django_db
def test_demo_user_command_is_refused_when_debug_is_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("ensure_demo_user")
    assert not get_user_model().objects.filter(username="demo").exists()


@pytest.mark.django_db
def test_demo_user_service_refuses_when_debug_is_off(settings):
    settings.DEBUG = False
    with pytest.raises(PermissionDenied, match="published password"):
        demo_user_ensure()
    assert not get_user_model().objects.filter(username="demo").exists()
