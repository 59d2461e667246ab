"""User tools declared as HTTP endpoints: the model's arguments POSTed over a real socket, and
never to an internal address (issue 14 item 3)."""

import asyncio
import ipaddress
import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from engine.conversation.config import HttpTool
from engine.conversation.context import SIGNATURE_HEADER, TIMESTAMP_HEADER, ToolContext, verify
from engine.conversation.egress import EgressPolicy, ToolEgressConfig, address_kind
from engine.conversation.tools import ToolClient

LOCAL = ToolEgressConfig(allow_private_addresses=True)
LOOPBACK_FOR_TENANTS = ToolEgressConfig(tenant_allowable_networks=("127.0.0.0/8",))  # an operator's ceiling


async def _serve(*routes):
    """A server on 127.0.0.1 with (method, path, handler) routes; returns (runner, base URL)."""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


class NamesResolver(AbstractResolver):
    """Answers some names with fixed addresses (what a hostile DNS server would say), others as usual."""

    def __init__(self, names):
        self.names = names
        self.inner = DefaultResolver()

    async def resolve(self, host, port=0, family=socket.AF_INET):
        if host in self.names:
            return [{"hostname": host, "host": self.names[host], "port": port, "family": socket.AF_INET,
                     "proto": 0, "flags": socket.AI_NUMERICHOST}]
        return await self.inner.resolve(host, port, family)

    async def close(self):
        await self.inner.close()


def tool(url, **kw):
    return HttpTool(name="t", description="d", url=url, **kw)


async def test_the_arguments_are_posted_and_the_reply_is_the_result():
    seen = []

    async def handler(request):
        seen.append(((await request.json())["arguments"], request.headers.get("Authorization")))
        return web.Response(text='{"slots": ["9:00", "11:30"]}')

    runner, base = await _serve(("POST", "/tool", handler))
    client = ToolClient(LOCAL)
    find = HttpTool(name="find_slots", description="d", url=base + "/tool", headers={"Authorization": "Bearer k"})
    result = await client.run(find, '{"day": "monday"}')
    await client.aclose()
    await runner.cleanup()

    assert result == '{"slots": ["9:00", "11:30"]}'
    assert seen == [({"day": "monday"}, "Bearer k")]


async def test_failures_become_readable_results_for_the_model_not_exceptions():
    async def failing(request):
        return web.Response(status=500, text="boom")

    async def slow(request):
        await asyncio.sleep(2)  # a tool server slower than the client's timeout
        return web.Response(text="late")

    runner, base = await _serve(("POST", "/bad", failing), ("POST", "/slow", slow))
    client = ToolClient(LOCAL)
    results = [
        await client.run(tool(base + "/bad"), "{}"),
        await client.run(tool(base + "/slow", timeout_s=0.2), "{}"),
        await client.run(tool(base + "/bad"), "{not json"),
        await client.run(tool("http://127.0.0.1:9/x"), "{}"),
    ]
    await client.aclose()
    await runner.cleanup()
    failed, timed_out, bad_json, refused = results

    assert failed == "error: t failed with HTTP 500"
    assert timed_out == "error: t timed out after 0.2 s"
    assert bad_json == "error: the arguments for t were not valid JSON"
    assert refused.startswith("error: t is unavailable (")


# -- where tools may connect ----------------------------------------------------------------


@pytest.mark.parametrize(("address", "kind"), [
    ("169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("64:ff9b::7f00:1", "loopback"),  # NAT64
    ("2002:7f00:1::", "loopback"),  # 6to4
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("fec0::1", "private"),  # deprecated site-local
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "private"),
    ("2001:db8::1", "private"),
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
])
def test_internal_addresses_are_named_and_public_ones_pass(address, kind):
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_the_allow_list_opens_networks_and_hosts_but_allow_private_never_opens_metadata():
    metadata = ipaddress.ip_address("169.254.169.254")
    assert EgressPolicy(allow_private=True).refusal(ipaddress.ip_address("10.0.0.1")) is None
    assert EgressPolicy(allow_private=True).refusal(metadata) == "cloud metadata"
    listed = EgressPolicy.of(["10.20.0.0/16", "Billing.Internal."])
    assert listed.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert listed.refusal(ipaddress.ip_address("10.21.3.4")) == "private"
    assert listed.host_allowed("billing.internal")
    with pytest.raises(ValueError, match="#2") as exc:
        EgressPolicy.of(["10.0.0.0/8", "http://evil/<script>"])
    assert "evil" not in str(exc.value)


class Target:
    """A tool server on 127.0.0.1 that counts the requests it gets."""

    def __init__(self):
        self.hits = []

    async def handler(self, request):
        self.hits.append((request.method, request.path, request.headers.get("Authorization")))
        return web.Response(text="secret")


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://127.0.0.1:6379/",
    "http://[::ffff:127.0.0.1]:6379/",
    "http://10.0.0.1/",
])
async def test_internal_literal_urls_are_refused_without_connecting(url):
    client = ToolClient()  # the default: public addresses only
    result = await client.run(tool(url, timeout_s=1), "{}")
    await client.aclose()

    assert result.startswith("error: t may not reach a ")
    assert "unavailable" not in result  # refused by policy, not a failed connection


async def test_a_name_that_resolves_inside_is_refused_at_connect_time():
    target = Target()

    runner, base = await _serve(("POST", "/x", target.handler))
    port = base.rsplit(":", 1)[1]
    client = ToolClient(resolver=lambda: NamesResolver({"rebound.example.com": "127.0.0.1"}))
    results = [
        await client.run(tool(f"http://localhost:{port}/x"), "{}"),
        await client.run(tool(f"http://rebound.example.com:{port}/x"), "{}"),
    ]
    await client.aclose()
    await runner.cleanup()
    result = results

    assert result == ["error: t may not reach a loopback address"] * 2
    assert target.hits == []


async def test_redirects_to_internal_addresses_are_not_followed():
    target = Target()

    def redirect_to(location):
        async def handler(request):
            raise web.HTTPTemporaryRedirect(location.format(port=request.url.port))
        return handler

    runner, base = await _serve(
        ("POST", "/secret", target.handler),
        ("POST", "/to-literal", redirect_to("http://127.0.0.1:{port}/secret")),
        ("POST", "/to-name", redirect_to("http://localhost:{port}/secret")),
        ("POST", "/to-metadata", redirect_to("http://169.254.169.254/latest/meta-data/")),
        ("POST", "/to-file", redirect_to("file:///etc/passwd")),
        ("POST", "/to-allowed", redirect_to("http://tools.example.com:{port}/secret")),
    )
    port = base.rsplit(":", 1)[1]
    # The first hop is an allow-listed name; what it redirects to is checked afresh.
    client = ToolClient(LOOPBACK_FOR_TENANTS, resolver=lambda: NamesResolver({"tools.example.com": "127.0.0.1"}))
    policy = client.policy_for(["tools.example.com"])
    first = f"http://tools.example.com:{port}"
    results = [await client.run(tool(first + path), "{}", policy)
               for path in ("/to-literal", "/to-name", "/to-metadata", "/to-file")]
    allowed = await client.run(tool(first + "/to-allowed", headers={"Authorization": "Bearer k"}), "{}", policy)
    await client.aclose()
    await runner.cleanup()

    assert results == [
        "error: t may not reach a loopback address",
        "error: t may not reach a loopback address",
        "error: t may not reach a cloud metadata address",
        "error: t was redirected to a URL that is not http(s)",
    ]
    assert allowed == "secret"
    assert target.hits == [("POST", "/secret", "Bearer k")]  # only the allowed hop; same origin keeps headers


async def test_a_redirect_to_another_origin_does_not_carry_the_tools_headers():
    target = Target()

    async def bounce(request):
        raise web.HTTPFound(f"http://other.example.com:{request.url.port}/secret")

    runner, base = await _serve(("POST", "/bounce", bounce), ("GET", "/secret", target.handler))
    client = ToolClient(LOCAL, resolver=lambda: NamesResolver({"other.example.com": "127.0.0.1"}))
    result = await client.run(tool(base + "/bounce", headers={"Authorization": "Bearer k"}), "{}")
    await client.aclose()
    await runner.cleanup()

    assert result == "secret"
    assert target.hits == [("GET", "/secret", None)]  # 302 turns the POST into a GET, as browsers do


async def test_an_oversized_reply_is_an_error_for_the_model():
    async def big(request):
        return web.Response(text="x" * 5000)

    async def streamed(request):
        response = web.StreamResponse()  # chunked: no Content-Length to refuse up front
        await response.prepare(request)
        for _ in range(50):
            await response.write(b"y" * 1000)
        await response.write_eof()
        return response

    async def fits(request):
        return web.Response(text="z" * 1024)

    runner, base = await _serve(("POST", "/big", big), ("POST", "/streamed", streamed), ("POST", "/fits", fits))
    client = ToolClient(LOCAL.model_copy(update={"max_response_bytes": 1024}))
    results = [await client.run(tool(base + path), "{}") for path in ("/big", "/streamed", "/fits")]
    await client.aclose()
    await runner.cleanup()
    big_result, streamed_result, fits_result = results

    assert big_result == "error: t replied with more than 1024 bytes"
    assert streamed_result == "error: t replied with more than 1024 bytes"
    assert fits_result == "z" * 1024


async def test_an_organisation_allow_list_opens_its_own_network_only():
    target = Target()

    runner, base = await _serve(("POST", "/x", target.handler))
    client = ToolClient(LOOPBACK_FOR_TENANTS)
    opened = await client.run(tool(base + "/x"), "{}", client.policy_for(["127.0.0.0/8"]))
    closed = await client.run(tool(base + "/x"), "{}", client.policy_for([]))
    await client.aclose()
    await runner.cleanup()
    result = opened, closed

    assert result == ("secret", "error: t may not reach a loopback address")
    assert len(target.hits) == 1


def test_only_local_mode_lets_tools_reach_private_addresses_by_default():
    from callagent.wiring import tuned_for_providers
    from control_plane.settings import Settings

    assert tuned_for_providers(Settings(providers={"mode": "local"})).tools.allow_private_addresses
    assert not tuned_for_providers(Settings(providers={"mode": "remote"})).tools.allow_private_addresses
    closed = Settings(providers={"mode": "local"}, tools={"allow_private_addresses": False})
    assert not tuned_for_providers(closed).tools.allow_private_addresses  # the operator's choice stands


async def test_past_the_session_cap_a_policy_gets_a_session_of_its_own_per_request():
    target = Target()

    runner, base = await _serve(("POST", "/x", target.handler))
    client = ToolClient(LOOPBACK_FOR_TENANTS)
    client.MAX_SESSIONS = 0  # every organisation's list is one too many
    results = [await client.run(tool(base + "/x"), "{}", client.policy_for(["127.0.0.0/8"])),
               await client.run(tool(base + "/x"), "{}", client.policy_for(["10.0.0.0/8"]))]
    cached = len(client._sessions)
    await client.aclose()
    await runner.cleanup()

    assert results == ["secret", "error: t may not reach a loopback address"]
    assert cached == 0 and len(target.hits) == 1


async def test_the_call_context_and_a_verifiable_signature_go_with_every_request():
    seen = []

    async def handler(request):
        seen.append((await request.read(), dict(request.headers)))
        return web.Response(text="ok")

    secret = ToolEgressConfig(signing_key="k" * 40).signing_secrets("org-1")[0].encode()
    context = ToolContext(call_id="c-1", organisation_id="org-1", call_control_id="v3:x", from_number="+15550100",
                          to_number="+15550199", direction="outbound", variables={"customer": "Ada"},
                          signing_secrets=(secret,))

    runner, base = await _serve(("POST", "/tool", handler))
    client = ToolClient(LOCAL)
    result = await client.run(tool(base + "/tool"), '{"q": 1}', context=context)
    await client.aclose()
    await runner.cleanup()
    assert result == "ok"
    body, headers = seen[0]
    import orjson
    assert orjson.loads(body) == {"tool": "t", "arguments": {"q": 1}, "call": {
        "call_id": "c-1", "organisation_id": "org-1", "call_control_id": "v3:x", "from": "+15550100",
        "to": "+15550199", "direction": "outbound", "variables": {"customer": "Ada"}}}
    assert headers[SIGNATURE_HEADER].startswith("v1=") and headers[TIMESTAMP_HEADER].isdigit()
    assert verify(secret, headers, body)
    # Another organisation's secret, a changed body, or an old timestamp do not verify.
    other = ToolEgressConfig(signing_key="k" * 40).signing_secrets("org-2")[0].encode()
    assert not verify(other, headers, body)
    assert not verify(secret, headers, body.replace(b"Ada", b"Bob"))
    assert not verify(secret, headers, body, now=int(headers[TIMESTAMP_HEADER]) + 301)
    assert secret.decode() not in body.decode() and "signing" not in body.decode()


def test_without_a_signing_key_requests_carry_no_signature_and_the_org_endpoint_says_why():
    assert ToolEgressConfig().signing_secrets("org-1") == ()
    with pytest.raises(ValueError):
        ToolEgressConfig(signing_key="short")
    rotated = ToolEgressConfig(signing_key="n" * 32, previous_signing_key="o" * 32).signing_secrets("org-1")
    assert len(rotated) == 2 and rotated[0] == ToolEgressConfig(signing_key="n" * 32).signing_secrets("org-1")[0]



@pytest.mark.parametrize("status", [307, 302])
async def test_a_signature_goes_only_with_its_body_to_the_tools_own_origin(status):
    seen = []

    async def bounce(request):
        raise web.HTTPTemporaryRedirect("/again") if status == 307 else web.HTTPFound("/again")

    async def again(request):
        seen.append((request.method, await request.read(), dict(request.headers)))
        return web.Response(text="ok")

    secret = b"ts_" + b"0" * 64
    context = ToolContext(call_id="c-1", signing_secrets=(secret,))

    runner, base = await _serve(("POST", "/bounce", bounce), ("POST", "/again", again), ("GET", "/again", again))
    client = ToolClient(LOCAL)
    result = await client.run(tool(base + "/bounce"), '{"a": 1}', context=context)
    await client.aclose()
    await runner.cleanup()
    assert result == "ok"
    ((method, body, headers),) = seen
    if status == 307:  # the same POST, the same body: its signature still verifies
        assert method == "POST" and verify(secret, headers, body)
    else:  # a GET without the body: no signature of a body it does not carry
        assert method == "GET" and body == b"" and SIGNATURE_HEADER not in headers


async def test_an_organisation_list_never_opens_more_than_the_operators_ceiling():
    """A tenant's ``tool_allowed_destinations`` is honoured only inside the operator's
    ``tenant_allowable_networks``: by default (empty) nothing internal, metadata and loopback
    included, whatever network or host name the tenant lists."""
    target = Target()
    runner, base = await _serve(("POST", "/x", target.handler))
    port = base.rsplit(":", 1)[1]
    names = {"crm.corp": "127.0.0.1", "meta.corp": "169.254.169.254"}
    closed = ToolClient(resolver=lambda: NamesResolver(names))  # the default: an empty ceiling
    private = ToolClient(ToolEgressConfig(tenant_allowable_networks=("10.0.0.0/8",)),
                         resolver=lambda: NamesResolver(names))
    results = [
        await closed.run(tool(base + "/x"), "{}", closed.policy_for(["127.0.0.0/8"])),
        await closed.run(tool(base + "/x"), "{}", closed.policy_for(["0.0.0.0/0", "::/0"])),
        await closed.run(tool(f"http://crm.corp:{port}/x"), "{}", closed.policy_for(["crm.corp"])),
        await private.run(tool(base + "/x"), "{}", private.policy_for(["127.0.0.0/8"])),
        await private.run(tool(f"http://crm.corp:{port}/x"), "{}", private.policy_for(["crm.corp"])),
        await private.run(tool("http://169.254.169.254/x"), "{}", private.policy_for(["169.254.169.254/32"])),
        await private.run(tool("http://meta.corp/x"), "{}", private.policy_for(["meta.corp"])),
    ]
    for client in (closed, private):
        await client.aclose()
    await runner.cleanup()

    assert results == ["error: t may not reach a loopback address"] * 5 + [
        "error: t may not reach a cloud metadata address"] * 2
    assert target.hits == []


def test_the_operators_ceiling_bounds_what_an_organisation_may_store():
    policy = ToolEgressConfig(tenant_allowable_networks=("10.0.0.0/8", "fd12::/16")).policy()
    assert policy.tenant_refusal(["10.1.0.0/16", "crm.internal", "fd12:1::/32"]) is None
    for wide in (["10.1.0.0/16", "169.254.169.254/32"], ["0.0.0.0/0"], ["127.0.0.1/32"], ["fd00:ec2::254"],
                 ["::ffff:0:0/96"]):
        refused = policy.tenant_refusal(wide)
        assert refused is not None and "tools.tenant_allowable_networks" in refused, wide
    empty = ToolEgressConfig().policy()
    assert "is empty" in (empty.tenant_refusal(["crm.internal"]) or "")
    assert empty.tenant_refusal([]) is None
    with pytest.raises(ValueError):
        ToolEgressConfig(tenant_allowable_networks=("crm.internal",))  # a ceiling is networks only
