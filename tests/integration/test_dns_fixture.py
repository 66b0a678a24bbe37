"""The DNS fixture itself (dnsfixture.py, dnsmasq): TXT records of any octets and length (SPF,
DKIM keys over 255 octets, DMARC with commas), several records at one name, DNSBL-style A
records, the answers' TTL, REFUSED outside the fixture's zones, and UDP answered while a TCP
connection is held open (dnsmasq --keep-in-foreground; --no-daemon froze UDP meanwhile)."""

import socket

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from dnsfixture import make_dns  # noqa: F401 (fixture)


def txt_records(response):
    return sorted(b"".join(rdata.strings) for rrset in response.answer
                  if rrset.rdtype == dns.rdatatype.TXT for rdata in rrset)


def test_txt_with_commas_quotes_and_any_length(make_dns):
    dmarc = 'v=DMARC1; p=reject; rua=mailto:a@example.org,mailto:b@example.org; x="q"'
    key = "v=DKIM1; k=rsa; p=" + "B" * 700
    server = make_dns(txt={"_dmarc.sender.test": dmarc, "sel._domainkey.sender.test": key,
                           "bytes.test": b"\x00\xff raw"})
    assert server.txt("_dmarc.sender.test") == dmarc.encode()
    assert server.txt("sel._domainkey.sender.test") == key.encode()
    assert server.txt("bytes.test") == b"\x00\xff raw"
    response = server.query("sel._domainkey.sender.test", "TXT")
    [rdata] = [r for rrset in response.answer for r in rrset]
    assert [len(s) for s in rdata.strings] == [255, 255, len(key) - 510]


def test_several_txt_records_at_one_name(make_dns):
    server = make_dns(txt={"two.test": ["v=spf1 -all", "v=spf1 +all"]})
    assert txt_records(server.query("two.test", "TXT")) == [b"v=spf1 +all", b"v=spf1 -all"]


def test_dnsbl_listing_is_an_a_record(make_dns):
    server = make_dns(hosts={"2.0.0.127.bl.test": "127.0.0.2"})
    response = server.query("2.0.0.127.bl.test", "A")
    assert [r.address for rrset in response.answer for r in rrset] == ["127.0.0.2"]


def test_ttl_is_zero_unless_asked(make_dns):
    plain = make_dns(txt={"t.test": "x"})
    cached = make_dns(txt={"t.test": "x"}, ttl=300)
    assert plain.query("t.test", "TXT").answer[0].ttl == 0
    assert cached.query("t.test", "TXT").answer[0].ttl == 300


def test_names_outside_the_zones_are_refused(make_dns):
    server = make_dns()
    assert server.query("anything.invalid", "A").rcode() == dns.rcode.REFUSED


def test_udp_is_answered_while_a_tcp_connection_is_open(make_dns):
    server = make_dns(txt={"t.test": "answer"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
        # Half of a query's length prefix, then nothing: with --no-daemon dnsmasq waited for
        # the rest in its only process and the UDP query below timed out.
        slow.sendall(b"\x00")
        assert server.txt("t.test") == b"answer"
        request = dns.message.make_query("t.test", "TXT")
        response = dns.query.tcp(request, "127.0.0.1", port=server.port, timeout=5)
        assert txt_records(response) == [b"answer"]
