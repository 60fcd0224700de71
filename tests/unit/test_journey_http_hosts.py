"""The http action's allow-list: entries parsed with what to write instead, URLs matched."""

from __future__ import annotations

import pytest

from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.http_hosts import (
    MAX_HOSTS,
    HostEntry,
    HostEntryError,
    allowed,
    parse_entries,
    parse_entry,
    refusal,
)
from shared.domain.journeys.validation import validate
from tests.unit.test_journey_advance import CONDITIONAL


def hosts(*texts: str) -> list[HostEntry]:
    return parse_entries(texts)


@pytest.mark.parametrize(("text", "canonical"), [
    ("api.crm.example.com", "api.crm.example.com"),
    ("  API.Crm.Example.COM. ", "api.crm.example.com"),
    ("*.crm.example.com", "*.crm.example.com"),
    ("Bücher.Example", "xn--bcher-kva.example"),
    ("*.BÜCHER.example", "*.xn--bcher-kva.example"),
    ("api.example.com:8443", "api.example.com:8443"),
    ("203.0.113.7", "203.0.113.7"),
    ("127.0.0.1:9000", "127.0.0.1:9000"),
    ("[2001:DB8::1]:8443", "[2001:db8::1]:8443"),
    ("[2001:db8:0::1]", "[2001:db8::1]"),
])
def test_entries_are_normalised(text: str, canonical: str) -> None:
    assert str(parse_entry(text)) == canonical


@pytest.mark.parametrize(("text", "says"), [
    ("", "write a host, such as"),
    ("https://api.example.com/hook", "write 'api.example.com'"),
    ("user@api.example.com", "write 'api.example.com'"),
    ("api.*.example.com", "a wildcard is only a whole first label"),
    ("*api.example.com", "a wildcard is only a whole first label"),
    ("*.*.example.com", "a wildcard is only a whole first label"),
    ("*", "a wildcard is only a whole first label"),
    ("*.com", "such as '*.example.com'"),
    ("*.10.0.0.1", "an IP address takes no wildcard"),
    ("api.example.com:0", "a port is a number from 1 to 65535"),
    ("api.example.com:http", "a port is a number from 1 to 65535"),
    ("2001:db8::1", "write an IPv6 address in brackets, such as '[2001:db8::1]'"),
    ("[api.example.com]", "only an IPv6 address goes in brackets"),
    ("bad_name.example.com", "is not a host name"),
    ("-x.example.com", "is not a host name"),
    ("127.1", "write the address in full"),
])
def test_a_bad_entry_says_what_to_write_instead(text: str, says: str) -> None:
    with pytest.raises(HostEntryError, match=None) as error:
        parse_entry(text)
    assert says in str(error.value), str(error.value)


def test_entries_name_the_bad_one_dedupe_and_are_bounded() -> None:
    assert [str(e) for e in hosts("a.example.com", "A.example.com", "b.example.com")] == [
        "a.example.com", "b.example.com"]
    with pytest.raises(HostEntryError, match=r"^hosts\[1\]: 'x\.\*\.example\.com'"):
        hosts("a.example.com", "x.*.example.com")
    assert len(parse_entries([f"h{i}.example.com" for i in range(MAX_HOSTS)])) == MAX_HOSTS
    with pytest.raises(HostEntryError, match="at most 100"):
        parse_entries([f"h{i}.example.com" for i in range(MAX_HOSTS + 1)])


def test_exact_names_match_in_any_case_and_idn_form_on_the_default_port() -> None:
    listed = hosts("api.crm.example.com", "bücher.example")
    for url in ("https://api.crm.example.com/hook", "https://API.CRM.Example.com./x?y=1",
                "https://api.crm.example.com:443/hook", "http://api.crm.example.com/",
                "http://api.crm.example.com:80/", "https://BÜCHER.example/",
                "https://xn--bcher-kva.example/"):
        assert allowed(url, listed), url
    for url in ("https://crm.example.com/", "https://x.api.crm.example.com/",
                "https://api.crm.example.com:8443/", "http://api.crm.example.com:443/",
                "https://api.crm.example.com.evil.net/", "https://evil.net/api.crm.example.com",
                "ftp://api.crm.example.com/", "https://api.crm.example.com:x/"):
        assert not allowed(url, listed), url


def test_a_wildcard_matches_subdomains_only() -> None:
    listed = hosts("*.crm.example.com")
    assert allowed("https://api.crm.example.com/", listed)
    assert allowed("https://a.b.CRM.example.com/", listed)
    assert not allowed("https://crm.example.com/", listed)
    assert not allowed("https://example.com/", listed)
    assert not allowed("https://evilcrm.example.com/", listed)


def test_a_port_is_allowed_only_when_the_entry_names_it() -> None:
    listed = hosts("api.example.com:8443")
    assert allowed("https://api.example.com:8443/", listed)
    assert allowed("http://api.example.com:8443/", listed)
    assert not allowed("https://api.example.com/", listed)
    assert not allowed("https://api.example.com:8444/", listed)


def test_user_info_in_the_url_is_refused_even_for_a_listed_host() -> None:
    listed = hosts("api.example.com")
    assert not allowed("https://user:secret@api.example.com/", listed)
    assert not allowed("https://user@api.example.com/", listed)
    assert not allowed("https://api.example.com@evil.net/", listed)
    assert "no user info" in refusal("https://user@api.example.com/")


def test_ip_literals_only_when_listed_literally() -> None:
    listed = hosts("*.example.com", "203.0.113.7", "127.0.0.1:9000", "[2001:db8::1]")
    assert allowed("https://203.0.113.7/", listed)
    assert allowed("http://127.0.0.1:9000/hook", listed)
    assert allowed("https://[2001:DB8:0::1]/", listed)
    assert not allowed("https://203.0.113.8/", listed)
    assert not allowed("http://127.0.0.1/hook", listed)
    assert not allowed("http://127.1:9000/hook", listed)  # a short form is no address
    assert not allowed("http://2130706433:9000/hook", listed)
    assert not allowed("https://[2001:db8::2]/", listed)
    assert not allowed("https://203.0.113.7/", hosts("*.113.7.example.com"))


def test_refusal_says_what_to_add() -> None:
    assert refusal("http://127.0.0.1:9000/hook") == (
        "host 127.0.0.1:9000 is not allow-listed: add 127.0.0.1:9000 with"
        " PUT /admin/v1/journey-http-hosts")
    assert refusal("https://API.crm.example.com:443/x").startswith(
        "host api.crm.example.com is not allow-listed")


def test_validation_errors_at_an_http_node_whose_host_is_not_listed() -> None:
    definition = parse_definition(CONDITIONAL)
    assert not [p for p in validate(definition) if p.node == "call"]  # None: not checked
    assert not [p for p in validate(definition, http_hosts=hosts("crm.example.com"))
                if p.node == "call"]
    [problem] = [p for p in validate(definition, http_hosts=hosts("*.crm.example.com"))
                 if p.node == "call"]
    assert problem.severity == "error"
    assert problem.message == ("host crm.example.com is not allow-listed: add"
                               " crm.example.com with PUT /admin/v1/journey-http-hosts")
    assert [p.node for p in validate(definition, http_hosts=[])
            if p.severity == "error"] == ["call"]
