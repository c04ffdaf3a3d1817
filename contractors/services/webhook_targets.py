"""Where a contractor's leads may be posted: the check of a webhook URL, when it is saved and again before
every POST.

A webhook is a request LeadEngine's servers make to an address a contractor chose, from inside the
network LeadEngine runs in. So only https (plain http with DEBUG or WEBHOOK_ALLOW_HTTP on), and only
hosts whose every address is public: loopback, private, carrier-grade NAT, link-local, multicast,
unspecified, reserved and documentation ranges and the cloud metadata services are refused, in any
spelling that resolves to them (decimal or octal IPv4, IPv4-mapped IPv6, NAT64 and 6to4 forms).
WEBHOOK_ALLOW_PRIVATE_TARGETS lets loopback, private and carrier-grade NAT addresses through for
receivers on the premises; the metadata services, link-local, multicast, unspecified and reserved
addresses stay refused whatever the settings: no receiver lives there, and the metadata services hand
out the server's cloud credentials.

The check returns the addresses it resolved and checked; the delivery connects to those, never to a
second resolution of the name, so a name that resolves elsewhere a moment later (DNS rebinding) cannot
take a POST past the check.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from contractors.errors import WebhookTargetError, WebhookTargetRefused, WebhookTargetUnresolved

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"https": 443, "http": 80}

# Instance metadata services (AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle: 169.254.169.254; AWS
# ECS and EKS: 169.254.170.2 and .23; AWS over IPv6: fd00:ec2::254 and ::23; Alibaba: 100.100.100.200;
# Oracle's older 192.0.0.192): refused under any setting.
METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in [
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "100.100.100.200",
        "192.0.0.192",
        "fd00:ec2::254",
        "fd00:ec2::23",
    ]
)

# (networks, what an address in them is, whether WEBHOOK_ALLOW_PRIVATE_TARGETS lets it through), first match
# wins. Spelled out rather than read from ipaddress's is_private/is_global, whose lists change between
# Python versions.
RANGES: list[tuple[list[str], str, bool]] = [
    (["0.0.0.0/8", "::/128"], "an unspecified address (it reaches this server)", False),
    (["127.0.0.0/8", "::1/128"], "a loopback address", True),
    (["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "64:ff9b:1::/48"], "a private address", True),
    (["100.64.0.0/10"], "a carrier-grade NAT address", True),
    (["169.254.0.0/16", "fe80::/10"], "a link-local address", False),
    (["224.0.0.0/4", "ff00::/8"], "a multicast address", False),
    (
        [
            "192.0.0.0/24",
            "192.0.2.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
            "::/8",
            "100::/64",
            "2001::/23",
            "2001:db8::/32",
            "3fff::/20",
            "fec0::/10",
        ],
        "a reserved address",
        False,
    ),
]
NETWORKS = [
    (ipaddress.ip_network(network), kind, allowable) for networks, kind, allowable in RANGES for network in networks
]
NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL: the host name (for the Host header, TLS SNI and the certificate) and the
    addresses it resolved to, every one allowed, which are the ones to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    """Why an address is refused ("a loopback address") and whether WEBHOOK_ALLOW_PRIVATE_TARGETS lifts it."""

    kind: str
    allowable: bool
    metadata: bool = False

    def hint(self) -> str:
        if self.allowable:
            return (
                "leads are posted only to public addresses (WEBHOOK_ALLOW_PRIVATE_TARGETS allows receivers on the "
                "premises)."
            )
        if self.metadata:
            return "it hands out the server's cloud credentials and is never posted to."
        return "leads are never posted there."


def address_refusal(address: IPAddress, *, allow_private: bool) -> Refusal | None:
    """Why leads may not be posted to `address`, or None if they may."""
    if address.version == 6:
        # IPv6 spellings of an IPv4 address reach that IPv4 address: judged as it is.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            refusal = address_refusal(embedded, allow_private=allow_private)
            return refusal and Refusal(f"a form of {embedded}, {refusal.kind}", refusal.allowable, refusal.metadata)
    if address in METADATA:
        return Refusal("a cloud metadata service address", allowable=False, metadata=True)
    for network, kind, allowable in NETWORKS:
        if address in network:
            return None if allowable and allow_private else Refusal(kind, allowable)
    return None if address.is_global else Refusal("a reserved address", False)


def _resolved(host: str, port: int) -> list[str]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise WebhookTargetUnresolved(f"{host} could not be resolved ({error.strerror}).") from None
    except UnicodeError:
        raise WebhookTargetRefused(f"{host} is not a valid host name.") from None
    addresses: list[str] = []
    for *_, sockaddr in found:
        if sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))  # an IPv4 or IPv6 address, as text
    if not addresses:
        raise WebhookTargetUnresolved(f"{host} could not be resolved (no address).")
    return addresses


def webhook_target_check(*, url: str) -> WebhookTarget:
    """The target of `url` if leads may be posted there now, resolved; else WebhookTargetRefused (never
    under the current settings) or WebhookTargetUnresolved (the name did not resolve), saying why."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise WebhookTargetRefused(f"{url} is not a valid URL ({error}).") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise WebhookTargetRefused(f"Webhook URLs must start with https:// (not {scheme or 'nothing'}).")
    if scheme == "http" and not (settings.DEBUG or settings.WEBHOOK_ALLOW_HTTP):
        raise WebhookTargetRefused(
            "Webhook URLs must use https: leads are not sent in clear (http is allowed only with DEBUG or "
            "WEBHOOK_ALLOW_HTTP on)."
        )
    host = parts.hostname
    if not host:
        raise WebhookTargetRefused(f"{url} has no host.")
    if port == 0:
        raise WebhookTargetRefused(f"{url} names port 0, which nothing listens on.")
    port = port or DEFAULT_PORTS[scheme]
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_TARGETS
    addresses = _resolved(host, port)
    for found in addresses:
        refusal = address_refusal(ipaddress.ip_address(found), allow_private=allow_private)
        if refusal is not None:
            said = f"{host} is" if _same_address(host, found) else f"{host} resolves to {found},"
            raise WebhookTargetRefused(f"{said} {refusal.kind}: {refusal.hint()}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


def _same_address(host: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(address)
    except ValueError:
        return False


def validate_webhook_url(value: str) -> None:
    """The model and form validator of a contractor's webhook URL: blank (leads pulled by the API) or a
    target webhook_target_check accepts."""
    if not value:
        return
    try:
        webhook_target_check(url=value)
    except WebhookTargetError as error:
        raise ValidationError(str(error), code=error.code) from None
