"""Where leads may be posted: a contractor's webhook URL is checked when it is saved, by the service and the
admin form (contractors.services.webhook_targets). Nothing here connects anywhere; names other than IP
literals and `localhost` (/etc/hosts) resolve through an injected answer, never a DNS server."""

import socket

import pytest
from django.core.exceptions import ValidationError

from contractors.errors import WebhookTargetRefused, WebhookTargetUnresolved
from contractors.models import Contractor
from contractors.services.contractors import contractor_create
from contractors.services.webhook_targets import webhook_target_check
from tests.admin_pages import page_of
from tests.contractors.test_admin import CHANGELIST, contractor_form

PUBLIC_ONLY = (
    "leads are posted only to public addresses (WEBHOOK_ALLOW_PRIVATE_TARGETS allows receivers on the premises)."
)
NEVER = "leads are never posted there."
METADATA = "it hands out the server's cloud credentials and is never posted to."

# Each form of an internal address, and what the refusal says, with WEBHOOK_ALLOW_PRIVATE_TARGETS off.
FORBIDDEN = [
    ("https://127.0.0.1/hook", f"127.0.0.1 is a loopback address: {PUBLIC_ONLY}"),
    ("https://127.8.9.10/hook", f"127.8.9.10 is a loopback address: {PUBLIC_ONLY}"),
    ("https://localhost:6379/", f"localhost resolves to 127.0.0.1, a loopback address: {PUBLIC_ONLY}"),
    ("https://[::1]/hook", f"::1 is a loopback address: {PUBLIC_ONLY}"),
    ("https://10.1.2.3/hook", f"10.1.2.3 is a private address: {PUBLIC_ONLY}"),
    ("https://172.16.5.4/hook", f"172.16.5.4 is a private address: {PUBLIC_ONLY}"),
    ("https://192.168.1.20:8443/hook", f"192.168.1.20 is a private address: {PUBLIC_ONLY}"),
    ("https://[fd12:3456::1]/hook", f"fd12:3456::1 is a private address: {PUBLIC_ONLY}"),
    ("https://100.64.0.1/hook", f"100.64.0.1 is a carrier-grade NAT address: {PUBLIC_ONLY}"),
    ("https://169.254.169.254/latest/meta-data/", f"169.254.169.254 is a cloud metadata service address: {METADATA}"),
    ("https://[fd00:ec2::254]/", f"fd00:ec2::254 is a cloud metadata service address: {METADATA}"),
    ("https://100.100.100.200/", f"100.100.100.200 is a cloud metadata service address: {METADATA}"),
    ("https://169.254.1.1/hook", f"169.254.1.1 is a link-local address: {NEVER}"),
    ("https://[fe80::1]/hook", f"fe80::1 is a link-local address: {NEVER}"),
    ("https://0.0.0.0/hook", f"0.0.0.0 is an unspecified address (it reaches this server): {NEVER}"),
    ("https://[::]/hook", f":: is an unspecified address (it reaches this server): {NEVER}"),
    ("https://224.0.0.1/hook", f"224.0.0.1 is a multicast address: {NEVER}"),
    ("https://[ff02::1]/hook", f"ff02::1 is a multicast address: {NEVER}"),
    ("https://240.0.0.1/hook", f"240.0.0.1 is a reserved address: {NEVER}"),
    ("https://255.255.255.255/hook", f"255.255.255.255 is a reserved address: {NEVER}"),
    ("https://192.0.2.10/hook", f"192.0.2.10 is a reserved address: {NEVER}"),
    ("https://[2001:db8::1]/hook", f"2001:db8::1 is a reserved address: {NEVER}"),
    # IPv6 spellings of IPv4 addresses: mapped, compatible, NAT64, 6to4.
    ("https://[::ffff:127.0.0.1]/", f"::ffff:127.0.0.1 is a form of 127.0.0.1, a loopback address: {PUBLIC_ONLY}"),
    ("https://[::ffff:10.0.0.1]/", f"::ffff:10.0.0.1 is a form of 10.0.0.1, a private address: {PUBLIC_ONLY}"),
    (
        "https://[::ffff:a9fe:a9fe]/",
        f"::ffff:a9fe:a9fe is a form of 169.254.169.254, a cloud metadata service address: {METADATA}",
    ),
    ("https://[::127.0.0.1]/", f"::127.0.0.1 is a reserved address: {NEVER}"),
    ("https://[64:ff9b::a00:1]/", f"64:ff9b::a00:1 is a form of 10.0.0.1, a private address: {PUBLIC_ONLY}"),
    ("https://[2002:7f00:1::]/", f"2002:7f00:1:: is a form of 127.0.0.1, a loopback address: {PUBLIC_ONLY}"),
    # Decimal, octal and hexadecimal IPv4 spellings, which the resolver reads as the address they stand for.
    ("https://2130706433/hook", f"2130706433 resolves to 127.0.0.1, a loopback address: {PUBLIC_ONLY}"),
    ("https://0177.0.0.1/hook", f"0177.0.0.1 resolves to 127.0.0.1, a loopback address: {PUBLIC_ONLY}"),
    ("https://0x7f.1/hook", f"0x7f.1 resolves to 127.0.0.1, a loopback address: {PUBLIC_ONLY}"),
    ("https://167772161/hook", f"167772161 resolves to 10.0.0.1, a private address: {PUBLIC_ONLY}"),
    ("https://0/hook", f"0 resolves to 0.0.0.0, an unspecified address (it reaches this server): {NEVER}"),
    (
        "https://0251.0376.0251.0376/",
        f"0251.0376.0251.0376 resolves to 169.254.169.254, a cloud metadata service address: {METADATA}",
    ),
]
# With WEBHOOK_ALLOW_PRIVATE_TARGETS on, these are let through; every other form above stays refused.
ALLOWABLE = {
    "https://127.0.0.1/hook",
    "https://127.8.9.10/hook",
    "https://localhost:6379/",
    "https://[::1]/hook",
    "https://10.1.2.3/hook",
    "https://172.16.5.4/hook",
    "https://192.168.1.20:8443/hook",
    "https://[fd12:3456::1]/hook",
    "https://100.64.0.1/hook",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:10.0.0.1]/",
    "https://[64:ff9b::a00:1]/",
    "https://[2002:7f00:1::]/",
    "https://2130706433/hook",
    "https://0177.0.0.1/hook",
    "https://0x7f.1/hook",
    "https://167772161/hook",
}
HTTP_REFUSED = (
    "Webhook URLs must use https: leads are not sent in clear (http is allowed only with DEBUG or "
    "WEBHOOK_ALLOW_HTTP on)."
)


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.WEBHOOK_ALLOW_HTTP = False
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    return settings


@pytest.fixture
def resolving(monkeypatch):
    """`resolving(name, answer)`: `name` resolves to the address `answer`, or raises it if it is an error;
    other names resolve as usual."""
    real = socket.getaddrinfo
    answers: dict[str, object] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        if isinstance(answers[host], Exception):
            raise answers[host]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answers[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers.__setitem__


def create_with(trades, url: str) -> Contractor:
    return contractor_create(name="Peak Solar", slug="peak-solar", trades=[trades["solar"]], webhook_url=url)


def add_with(staff_client, trades, url: str):
    data = contractor_form(
        Contractor(name="Peak Solar", slug="peak-solar", time_zone="America/Denver"),
        served_trades=[trades["solar"].pk],
        webhook_url=url,
    )
    return staff_client.post(f"{CHANGELIST}add/", data)


@pytest.mark.parametrize(("url", "message"), FORBIDDEN)
def test_each_internal_address_form_is_refused_by_the_service_with_the_reason(trades, production, url, message):
    with pytest.raises(ValidationError) as refused:
        create_with(trades, url)
    assert message in refused.value.message_dict["webhook_url"]
    assert not Contractor.objects.exists()


@pytest.mark.parametrize(("url", "message"), FORBIDDEN)
def test_each_internal_address_form_is_refused_by_the_admin_form_with_the_reason(
    staff_client, trades, production, url, message
):
    response = add_with(staff_client, trades, url)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["webhook_url"] == [message]
    assert message in page_of(response)
    assert not Contractor.objects.exists()


@pytest.mark.parametrize(("url", "message"), FORBIDDEN)
def test_private_targets_allowed_lets_loopback_and_private_through_but_never_metadata_or_link_local(
    production, url, message
):
    production.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    if url in ALLOWABLE:
        assert webhook_target_check(url=url).port in (443, 6379, 8443)
    else:
        with pytest.raises(WebhookTargetRefused) as refused:
            webhook_target_check(url=url)
        assert str(refused.value) == message


def test_the_check_returns_the_address_it_resolved_with_the_host_name_kept(production):
    production.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    target = webhook_target_check(url="https://localhost:8443/hooks/leads?crm=1#ignored")
    assert (target.scheme, target.host, target.port, target.path, target.addresses) == (
        "https",
        "localhost",
        8443,
        "/hooks/leads?crm=1",
        ("127.0.0.1",),
    )


def test_a_name_with_any_internal_address_among_its_public_ones_is_refused(production, monkeypatch):
    real = socket.getaddrinfo

    def two_addresses(host, port, *args, **kwargs):
        if host != "crm.split.test":
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    with pytest.raises(WebhookTargetRefused, match=r"^crm\.split\.test resolves to 10\.0\.0\.7, a private address"):
        webhook_target_check(url="https://crm.split.test/hook")


def test_a_public_name_passes_and_keeps_its_address(production, resolving):
    resolving("crm.roofco.test", "93.184.215.14")
    target = webhook_target_check(url="https://crm.roofco.test/hooks")
    assert (target.host, target.port, target.addresses) == ("crm.roofco.test", 443, ("93.184.215.14",))


def test_plain_http_is_refused_in_production_by_the_service_and_the_admin(staff_client, trades, production, resolving):
    resolving("crm.roofco.test", "93.184.215.14")
    with pytest.raises(ValidationError) as refused:
        create_with(trades, "http://crm.roofco.test/hooks")
    assert refused.value.message_dict["webhook_url"] == [HTTP_REFUSED]

    response = add_with(staff_client, trades, "http://crm.roofco.test/hooks")
    assert response.context["adminform"].form.errors["webhook_url"] == [HTTP_REFUSED]
    assert not Contractor.objects.exists()


@pytest.mark.parametrize("switch", ["DEBUG", "WEBHOOK_ALLOW_HTTP"])
def test_plain_http_is_allowed_with_debug_or_allow_http(staff_client, trades, production, resolving, switch):
    resolving("crm.roofco.test", "93.184.215.14")
    setattr(production, switch, True)

    response = add_with(staff_client, trades, "http://crm.roofco.test/hooks")

    assert response.status_code == 302, page_of(response)
    assert Contractor.objects.get().webhook_url == "http://crm.roofco.test/hooks"


def test_a_loopback_receiver_is_saved_with_private_targets_allowed(staff_client, trades, production):
    production.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    production.WEBHOOK_ALLOW_HTTP = True

    response = add_with(staff_client, trades, "http://127.0.0.1:8080/hooks")

    assert response.status_code == 302, page_of(response)
    assert Contractor.objects.get().webhook_url == "http://127.0.0.1:8080/hooks"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://crm.roofco.test/leads", "Webhook URLs must start with https:// (not ftp)."),
        (
            "https://crm.roofco.test:99999/",
            "https://crm.roofco.test:99999/ is not a valid URL (Port out of range 0-65535).",
        ),
    ],
)
def test_a_url_leads_cannot_be_posted_to_is_refused_with_the_reason(trades, production, url, message):
    with pytest.raises(ValidationError) as refused:
        create_with(trades, url)
    assert message in refused.value.message_dict["webhook_url"]
    assert not Contractor.objects.exists()


def test_a_name_that_does_not_resolve_is_refused_when_saved(staff_client, trades, production, resolving):
    resolving("crm.gone.test", socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    message = "crm.gone.test could not be resolved (Name or service not known)."

    with pytest.raises(WebhookTargetUnresolved, match=r"^crm\.gone\.test could not be resolved"):
        webhook_target_check(url="https://crm.gone.test/hook")
    with pytest.raises(ValidationError) as refused:
        create_with(trades, "https://crm.gone.test/hook")
    assert refused.value.message_dict["webhook_url"] == [message]
    response = add_with(staff_client, trades, "https://crm.gone.test/hook")
    assert response.context["adminform"].form.errors["webhook_url"] == [message]
    assert not Contractor.objects.exists()


def test_a_blank_webhook_url_means_leads_are_pulled_and_is_not_checked(trades, production):
    assert create_with(trades, "").webhook_url == ""
