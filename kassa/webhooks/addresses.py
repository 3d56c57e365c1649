"""Where a webhook may be sent: an http(s) URL whose host resolves only to public addresses.

A receiver's URL is chosen by a tenant's admin, and Kassa's worker sends to it from inside the
installation's network: without this check a URL could make Kassa POST to its own database
host, a cloud metadata service (169.254.169.254) or anything else on the private network
(server-side request forgery). The host is resolved and *every* address it gives is checked,
when the endpoint is made and again at each delivery, and the delivery connects to an
address that passed the check, never resolving the name a second time: a name that resolved
to a public address at first and to a private one later (DNS rebinding) is caught.

`KASSA_WEBHOOKS_ALLOW_PRIVATE=1` lifts the address check (a receiver inside the network on
purpose, or a test's own on 127.0.0.1); the scheme check stays.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from kassa.core.errors import ValidationFailed

SCHEMES = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(ValidationFailed):
    """A URL Kassa will not send to (422 naming `url` from the API)."""

    def __init__(self, message: str, *, field: str = "url") -> None:
        super().__init__(field, message)


@dataclass(frozen=True)
class Target:
    """A URL taken apart, with the addresses its host resolved to (each one checked)."""

    scheme: str
    host: str
    port: int
    path: str  # with its query
    addresses: tuple[str, ...]


def parse(url: str, *, field: str = "url") -> SplitResult:
    """The URL's parts, refusing what is not an absolute http(s) URL to a host."""
    if any(c.isspace() for c in url):
        # http.client would refuse it at every try: refuse it now (encode spaces as %20).
        raise AddressRefused("must not contain spaces", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AddressRefused(f"is not a valid URL ({exc})", field=field) from None
    if parts.scheme not in SCHEMES:
        raise AddressRefused("must be an http:// or https:// URL", field=field)
    if not parts.hostname:
        raise AddressRefused("must name a host", field=field)
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("must not carry a user name or password", field=field)
    if parts.fragment:
        raise AddressRefused("must not have a #fragment", field=field)
    if port == 0:
        raise AddressRefused("must not name port 0", field=field)
    return parts


def refused_because(address: IPAddress) -> str | None:
    """Why Kassa will not send to this address, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for reason, hit in (("a loopback", address.is_loopback), ("a private", address.is_private),
                        ("a link-local", address.is_link_local),
                        ("a reserved", address.is_reserved),
                        ("a multicast", address.is_multicast),
                        ("an unspecified", address.is_unspecified),
                        ("a non-global", not address.is_global)):
        if hit:
            return reason
    return None


def resolve(url: str, *, field: str = "url") -> Target:
    """Take the URL apart and resolve its host; refuse it (AddressRefused, naming `field`) when
    it is not http(s), does not resolve, or resolves to any address that is not public (unless
    settings.KASSA_WEBHOOKS_ALLOW_PRIVATE)."""
    parts = parse(url, field=field)
    host = parts.hostname or ""
    port = parts.port or SCHEMES[parts.scheme]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"its host {host} does not resolve ({exc})", field=field) from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise AddressRefused(f"its host {host} does not resolve", field=field)
    if not settings.KASSA_WEBHOOKS_ALLOW_PRIVATE:
        for text in addresses:
            reason = refused_because(ipaddress.ip_address(text.split("%", 1)[0]))
            if reason:
                raise AddressRefused(f"its host {host} resolves to {reason} address ({text}); "
                                     "webhooks go to public addresses only", field=field)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=parts.scheme, host=host, port=port, path=path, addresses=addresses)
