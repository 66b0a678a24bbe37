"""A filter built on Sendmail's own libmilter (through Debian's python3-milter, pymilter), so
the milter client is checked against the reference implementation of the protocol's filter
side, not only against our own test milter. Run as a process:

    python3 libmilter_filter.py SOCKET VERDICT LOG [noreply]

SOCKET as libmilter spells it ("inet:PORT@127.0.0.1" or "unix:/path"); VERDICT what
end-of-message answers: accept, reject (smfi_setreply 550 5.7.1, multi-line), tempfail,
discard, headers (smfi_addheader, smfi_insheader, smfi_chgheader), quarantine, or
eom_only (a filter with only an end-of-message callback: libmilter then asks the client to
skip every other step). "noreply" marks every callback before the end of the message
@Milter.noreply, so libmilter negotiates the SMFIP_NR_ steps. Each callback appends one JSON
line to LOG: what the filter saw.
"""

import json
import sys

import Milter

SOCKET, VERDICT, LOG = sys.argv[1:4]
NOREPLY = len(sys.argv) > 4 and sys.argv[4] == "noreply"


def record(**what):
    with open(LOG, "a") as f:
        f.write(json.dumps(what) + "\n")


def maybe_noreply(func):
    return Milter.noreply(func) if NOREPLY else func


class Filter(Milter.Base):
    def __init__(self):
        self.id = Milter.uniqueID()

    @maybe_noreply
    def connect(self, hostname, family, hostaddr):
        record(step="connect", hostname=hostname, family=int(family),
               hostaddr=list(hostaddr) if hostaddr else None,
               client_addr=self.getsymval("{client_addr}"), j=self.getsymval("j"))
        return Milter.CONTINUE

    @maybe_noreply
    def hello(self, helo):
        record(step="helo", helo=helo, tls_version=self.getsymval("{tls_version}"))
        return Milter.CONTINUE

    @maybe_noreply
    def envfrom(self, mailfrom, *params):
        record(step="mail", mailfrom=mailfrom, mail_addr=self.getsymval("{mail_addr}"),
               queue_id=self.getsymval("i"))
        return Milter.CONTINUE

    @maybe_noreply
    def envrcpt(self, rcpt, *params):
        record(step="rcpt", rcpt=rcpt, rcpt_addr=self.getsymval("{rcpt_addr}"))
        return Milter.CONTINUE

    @maybe_noreply
    def data(self):
        record(step="data")
        return Milter.CONTINUE

    @maybe_noreply
    def header(self, name, value):
        record(step="header", name=name, value=value)
        return Milter.CONTINUE

    @maybe_noreply
    def eoh(self):
        record(step="eoh")
        return Milter.CONTINUE

    @maybe_noreply
    def body(self, chunk):
        record(step="body", body=chunk.decode("latin-1"))
        return Milter.CONTINUE

    def eom(self):
        record(step="eom", queue_id=self.getsymval("i"))
        if VERDICT == "reject":
            self.setreply("550", "5.7.1", "Rejected by libmilter", "second line")
            return Milter.REJECT
        if VERDICT == "tempfail":
            self.setreply("451", "4.7.1", "Busy in libmilter")
            return Milter.TEMPFAIL
        if VERDICT == "discard":
            return Milter.DISCARD
        if VERDICT == "headers":
            self.addheader("X-Libmilter", "added")
            self.addheader("X-Libmilter-First", "inserted", 0)
            self.chgheader("Subject", 1, "changed by libmilter")
        if VERDICT == "quarantine":
            self.quarantine("held by libmilter")
        return Milter.ACCEPT


class EomOnly(Milter.Base):
    def eom(self):
        record(step="eom", queue_id=self.getsymval("i"))
        self.addheader("X-Eom-Only", "yes")
        return Milter.CONTINUE


def main():
    Milter.factory = EomOnly if VERDICT == "eom_only" else Filter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.QUARANTINE)
    Milter.runmilter("mailpopbox-test", SOCKET, 60)


if __name__ == "__main__":
    main()
