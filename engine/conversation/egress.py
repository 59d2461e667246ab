"""Where a user's HTTP tool may connect: public addresses only, unless an operator allows more.

A tool's URL comes from an API client, and its reply goes back to the model, so a tool that
reaches ``127.0.0.1:6379`` or the cloud metadata service is request forgery from inside the
deployment. Checking the URL when the call is started is not enough (DNS can answer a public
address then and a private one at connect time), so the check runs where the connection is
made: :class:`GuardedResolver` filters every address a name resolves to, and
:meth:`EgressPolicy.url_refusal` checks IP literals (aiohttp connects to those without asking
the resolver). Each :class:`EgressPolicy` gets its own connector, so a pooled connection or a
cached lookup made under one organisation's allow-list is never reused under another's.

Two allow-lists, not equal: the operator's (server settings) opens what it names; an
organisation's (``tool_allowed_destinations``, set over the API by a tenant) only opens
addresses that are also inside the operator's ``tenant_allowable_networks``. The tenant's list
narrows the operator's ceiling, never widens it: with the default empty ceiling a tenant cannot
open any internal address (no ``169.254.169.254/32``, no ``10.0.0.0/8`` into the host network),
and a host name a tenant lists reaches only ceiling addresses, wherever DNS points it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from yarl import URL

from .context import organisation_secret

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA = frozenset({
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$)({_LABEL})(\.{_LABEL})*\.?$")

METADATA = "cloud metadata"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, NAT64, 6to4): it is where packets end up."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def canonical(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return embedded
        if address.scope_id:
            return ipaddress.IPv6Address(address.compressed.split("%", 1)[0])
    return address


def address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is internal (``"loopback"``, ``"private"``, ...), or None when it is public."""
    address = canonical(address)
    if address in _METADATA:
        return METADATA
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "shared (CGNAT)"
    if address.is_private or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local):
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def parse_destinations(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Allow-list entries as (host names, networks). Raises ValueError naming the entry's position,
    never its text (the list may come from an API client)."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for index, entry in enumerate(entries):
        text = entry.strip().lower() if isinstance(entry, str) else ""
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
            continue
        except ValueError:
            pass
        if not _HOSTNAME.match(text):
            raise ValueError(f"allowed destination #{index + 1} is neither a host name nor an IP network")
        hosts.add(text.rstrip("."))
    return frozenset(hosts), tuple(networks)


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs only (the operator's ceiling for organisations' allow-lists)."""
    hosts, networks = parse_destinations(entries)
    if hosts:
        raise ValueError("tenant_allowable_networks takes IP networks (CIDRs), not host names")
    return networks


def _within(network: IPNetwork, ceiling: Iterable[IPNetwork]) -> bool:
    return any(network.version == c.version and network.subnet_of(c) for c in ceiling)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EgressPolicy:
    """Which internal destinations tools may reach. By default none: only public addresses.

    ``allow_private`` opens every internal address except cloud metadata (local mode, tests);
    ``hosts`` and ``networks`` are an operator's allow-list (a listed host may resolve anywhere;
    a listed network opens the addresses inside it, metadata included if it covers it).
    ``tenant_hosts`` and ``tenant_networks`` are an organisation's: they open only addresses
    inside ``tenant_ceiling`` (the operator's ``tenant_allowable_networks``).
    """

    allow_private: bool = False
    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    tenant_ceiling: tuple[IPNetwork, ...] = ()
    tenant_hosts: frozenset[str] = frozenset()
    tenant_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str] = (), *, allow_private: bool = False,
           tenant_ceiling: Iterable[str] = ()) -> EgressPolicy:
        hosts, networks = parse_destinations(entries)
        return cls(allow_private=allow_private, hosts=hosts, networks=networks,
                   tenant_ceiling=parse_networks(tenant_ceiling))

    def tenant_refusal(self, entries: Iterable[str]) -> str | None:
        """Why an organisation's allow-list asks for more than the operator lets it open, or None.
        Names the entry's position, never its text."""
        entries = list(entries)
        parse_destinations(entries)  # ValueError for an entry that is neither a host nor a network
        for index, entry in enumerate(entries):
            try:
                network = ipaddress.ip_network(entry.strip().lower(), strict=False)
            except ValueError:
                if not self.tenant_ceiling:
                    return (f"allowed destination #{index + 1} is a host name, but the operator lets organisations "
                            "open no internal network (tools.tenant_allowable_networks is empty)")
                continue
            if not _within(network, self.tenant_ceiling):
                return (f"allowed destination #{index + 1} is outside the networks the operator lets organisations "
                        "open (tools.tenant_allowable_networks)")
        return None

    def extended(self, entries: Iterable[str]) -> EgressPolicy:
        """This policy plus an organisation's own allow-list entries (bounded by the ceiling)."""
        hosts, networks = parse_destinations(entries)
        if not hosts and not networks:
            return self
        return EgressPolicy(self.allow_private, self.hosts, self.networks, self.tenant_ceiling,
                            self.tenant_hosts | hosts, tuple(dict.fromkeys(self.tenant_networks + networks)))

    def host_allowed(self, host: str) -> bool:
        """An operator-listed host: every address it resolves to is allowed."""
        return host.lower().rstrip(".") in self.hosts

    def refusal(self, address: IPAddress, host: str | None = None) -> str | None:
        """Why a connection to ``address`` (resolved from ``host``) is refused, or None when it may go ahead."""
        kind = address_kind(address)
        if kind is None:
            return None
        address = canonical(address)
        if any(address.version == net.version and address in net for net in self.networks):
            return None
        if self.allow_private and kind != METADATA:
            return None
        if any(address.version == net.version and address in net for net in self.tenant_ceiling) and (
                any(address.version == net.version and address in net for net in self.tenant_networks)
                or (host is not None and host.lower().rstrip(".") in self.tenant_hosts)):
            return None
        return kind

    def literal_refusal(self, url: URL) -> str | None:
        """Why ``url``'s host may not be connected to, when it is an IP literal (aiohttp connects to
        those without asking the resolver); None for a host name (the resolver checks it)."""
        try:
            address = ipaddress.ip_address((url.raw_host or "").strip("[]"))
        except ValueError:
            return None
        return self.refusal(address)


class BlockedDestination(OSError):
    """Every address a tool's host resolved to is internal. An ``OSError`` so that aiohttp
    reports it as a connection error (``ClientConnectorError.os_error``)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"the destination is a {kind} address")
        self.kind = kind


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then drops the addresses ``policy`` refuses."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver) -> None:
        self.policy = policy
        self._inner = inner

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self.policy.host_allowed(host):
            return results
        kept: list[ResolveResult] = []
        refused: str | None = None
        for result in results:
            kind = self.policy.refusal(ipaddress.ip_address(result["host"]), host)
            if kind is None:
                kept.append(result)
            else:
                refused = refused or kind
        if not kept:
            raise BlockedDestination(refused or "unresolvable")
        return kept

    async def close(self) -> None:
        await self._inner.close()


class ToolEgressConfig(BaseModel):
    """Limits on the HTTP requests of user tools (``http_tools``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_private_addresses: bool = Field(
        False,
        description="Let tools reach loopback, private, link-local and other internal addresses (cloud metadata "
                    "excepted). For local mode and tests; never on a public deployment.",
    )
    allowed_destinations: tuple[str, ...] = Field(
        (), description="Host names or CIDRs every organisation's tools may reach although they are internal.",
    )
    tenant_allowable_networks: tuple[str, ...] = Field(
        (), description="CIDRs inside which an organisation's own tool_allowed_destinations are honoured (its "
                        "entries outside them are refused). Empty: organisations can only reach public addresses. "
                        "Never include cloud metadata or loopback unless every tenant may reach them.",
    )
    max_response_bytes: int = Field(65536, ge=1024, le=16 << 20,
                                    description="A tool reply larger than this is an error for the model.")
    max_redirects: int = Field(3, ge=0, le=10, description="Redirects followed (each hop checked like the first).")
    signing_key: SecretStr | None = Field(
        None, description="Server key each organisation's tool signing secret is derived from (at least 32 "
                          "characters); unset: HTTP tool requests are not signed. Changing it rotates every "
                          "organisation's secret.")
    previous_signing_key: SecretStr | None = Field(
        None, description="During a rotation: requests are signed with both keys' secrets until receivers moved.")

    @field_validator("signing_key", "previous_signing_key")
    @classmethod
    def _signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. the output of `openssl rand -hex 32`)")
        return value

    def signing_secrets(self, organisation_id: str) -> tuple[str, ...]:
        """The organisation's signing secrets, newest first (none when signing is off)."""
        keys = [k for k in (self.signing_key, self.previous_signing_key) if k is not None]
        return tuple(organisation_secret(k.get_secret_value().encode(), organisation_id) for k in keys)

    @field_validator("allowed_destinations")
    @classmethod
    def _destinations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_destinations(value)
        return value

    @field_validator("tenant_allowable_networks")
    @classmethod
    def _ceiling(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(value)
        return value

    def policy(self) -> EgressPolicy:
        return EgressPolicy.of(self.allowed_destinations, allow_private=self.allow_private_addresses,
                               tenant_ceiling=self.tenant_allowable_networks)
