"""A DNS server on loopback for the sending tests: dnsmasq answering from records the test gives,
so MX lookups, the A fallback, null MX (RFC 7505) and DKIM keys are all under the test's control.

  DNSServer        one dnsmasq process: .resolver ("127.0.0.1:PORT", the DNSResolver key),
                   .query(name, type) (dnspython, straight to it), .txt(name), .stop()
  make_dns         fixture: make_dns(mx=..., hosts=..., txt=..., null_mx=...) -> a running
                   DNSServer, stopped in teardown
  dkim_dnsfunc     the `dnsfunc` python3-dkim wants, asking this server

Names under .test, example.org and example.net are answered only from the given records
(NXDOMAIN / no data otherwise, never REFUSED), and nothing is forwarded anywhere; any other
name is REFUSED (a resolver's temporary failure: how a DNSBL zone that is down looks).

dnsmasq runs with --keep-in-foreground, not --no-daemon: with --no-daemon it serves TCP in its
only process, and a resolver that opens a TCP connection (after a truncated UDP answer, or
rspamd's, which keeps one open) freezes its UDP answers meanwhile.

dnsmasq quirks worth knowing: records are served with TTL 0 unless ttl= is given (so nothing
is cached by the server under test), negative answers carry no SOA, and a name that only has
TXT records (--dns-rr) is NXDOMAIN, not NODATA, for the other types.
"""

import socket
import subprocess
import time

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import free_port

DNSMASQ = "/usr/sbin/dnsmasq"
START_TIMEOUT = 10.0
QUERY_TIMEOUT = 2.0
# Zones dnsmasq treats as its own: unknown names there get NXDOMAIN instead of REFUSED.
LOCAL_ZONES = ("test", "example.org", "example.net")
TXT_CHUNK = 255  # RFC 1035 3.3.14: one character-string holds at most 255 octets


START_ATTEMPTS = 5  # a port found free can be taken before dnsmasq binds it


def free_dns_port():
    """A port free for UDP and TCP on 127.0.0.1 (dnsmasq listens on both) a moment ago."""
    return free_port(kinds=(socket.SOCK_DGRAM, socket.SOCK_STREAM))


def txt_rdata(text):
    """One TXT record's RDATA (RFC 1035 3.3.14) as hex for --dns-rr: the text split into
    character-strings of at most 255 octets; any octets allowed (quotes, commas, long keys)."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    chunks = [data[i:i + TXT_CHUNK] for i in range(0, len(data), TXT_CHUNK)] or [b""]
    return b"".join(bytes([len(chunk)]) + chunk for chunk in chunks).hex()


def null_mx_rdata():
    """RFC 7505 3: preference 0 and the root name, as the hex dnsmasq's --dns-rr takes."""
    return "0000" + "00"


class DNSServer:
    """dnsmasq on address:port (127.0.0.1 and a free port unless given) with exactly the
    given records.

    mx:      {domain: [(exchange, preference), ...]}
    hosts:   {name: address or [addresses]}   (A and AAAA records, --host-record; also the
                                               A record of a DNSBL listing:
                                               {"2.0.0.127.bl.test": "127.0.0.2"})
    txt:     {name: text or [texts]}          (one TXT record per text, str or bytes of any
                                               length, split into 255-octet strings as RFC
                                               1035 needs: SPF, DKIM keys, DMARC, a DNSBL's
                                               reason; a list gives several records)
    null_mx: [domain, ...]                    ("MX 0 ." of RFC 7505, via --dns-rr)
    ttl:     seconds the answers say they may be cached (dnsmasq's default: 0)
    address, port: where to listen, e.g. 127.0.53.53 and 53 for a resolv.conf nameserver
    """

    def __init__(self, log_path, mx=None, hosts=None, txt=None, null_mx=(), ttl=None,
                 address="127.0.0.1", port=None):
        self.log_path = log_path
        self.address = address
        self.fixed_port = port
        self.port = None
        self.resolver = None
        self.process = None
        self.arguments = [
            DNSMASQ, "--keep-in-foreground",
            f"--listen-address={address}", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--conf-file=/dev/null", "--cache-size=0", "--log-queries",
        ]
        if ttl is not None:
            self.arguments.append(f"--local-ttl={ttl}")
        self.arguments += [f"--local=/{zone}/" for zone in LOCAL_ZONES]
        for domain, exchanges in (mx or {}).items():
            for exchange, preference in exchanges:
                self.arguments.append(f"--mx-host={domain},{exchange},{preference}")
        for name, addresses in (hosts or {}).items():
            if isinstance(addresses, str):
                addresses = [addresses]
            self.arguments.append(f"--host-record={name},{','.join(addresses)}")
        for name, texts in (txt or {}).items():
            if isinstance(texts, (str, bytes)):
                texts = [texts]
            # --dns-rr with the RDATA in hex: --txt-record cannot hold a comma or a quote.
            for text in texts:
                self.arguments.append(f"--dns-rr={name},{dns.rdatatype.TXT.value},"
                                      f"{txt_rdata(text)}")
        for domain in null_mx:
            self.arguments.append(f"--dns-rr={domain},{dns.rdatatype.MX.value},"
                                  f"{null_mx_rdata()}")

    def start(self):
        self.log = open(self.log_path, "ab")
        for _ in range(START_ATTEMPTS):
            self.port = self.fixed_port or free_dns_port()
            self.resolver = f"{self.address}:{self.port}"
            self.process = subprocess.Popen(self.arguments + [f"--port={self.port}"],
                                            stdin=subprocess.DEVNULL, stdout=self.log,
                                            stderr=subprocess.STDOUT)
            if self.wait_ready():
                return self
        raise AssertionError(f"dnsmasq could not listen after {START_ATTEMPTS} ports:\n"
                             f"{self.log_text()}")

    def wait_ready(self):
        """Until dnsmasq answers a query (any answer: it is listening). False when it exited
        because the port was taken meanwhile."""
        deadline = time.monotonic() + START_TIMEOUT
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "Address already in use" in self.log_text():
                    return False
                raise AssertionError(f"dnsmasq exited with {self.process.returncode}:\n"
                                     f"{self.log_text()}")
            try:
                self.query("ready.test", "A", timeout=0.3)
                return True
            except (dns.exception.Timeout, OSError) as error:
                last_error = error
                time.sleep(0.05)
        raise AssertionError(f"dnsmasq not answering on {self.resolver} after {START_TIMEOUT}s "
                             f"({last_error}):\n{self.log_text()}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None:
            self.log.close()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def query(self, name, rdtype, timeout=QUERY_TIMEOUT):
        """The full response message (rcode, answer) for one UDP query."""
        request = dns.message.make_query(name, rdtype, use_edns=0, payload=4096)
        response, _ = dns.query.udp_with_fallback(request, self.address, port=self.port,
                                                  timeout=timeout)
        return response

    def txt(self, name):
        """The (first) TXT record of name, its strings joined, as bytes; None when there is
        none."""
        response = self.query(name, "TXT")
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                for rdata in rrset:
                    return b"".join(rdata.strings)
        return None


def dkim_dnsfunc(dns_server):
    """python3-dkim's dnsfunc(name, timeout=5) -> TXT bytes, asking dns_server."""
    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii")
        return dns_server.txt(name) or b""
    return lookup


@pytest.fixture
def make_dns(tmp_path):
    """make_dns(mx=..., hosts=..., txt=..., null_mx=...) -> a running DNSServer."""
    started = []

    def factory(**records):
        server = DNSServer(tmp_path / f"dnsmasq{len(started)}.log", **records)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()
