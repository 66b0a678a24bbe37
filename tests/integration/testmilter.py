"""A tiny milter (Sendmail milter protocol version 6) on loopback TCP or a unix socket, whose
verdict the test chooses, for the replies rspamd does not easily produce.

    m = TestMilter(verdict="reject").start()      # m.spec: "inet:127.0.0.1:PORT"
    (host="::1": "inet:[::1]:PORT"; unix_path=PATH: "unix:PATH")
    ... run the client ...
    m.conversations[0]   # [(command, data bytes), ...] as received, in order
    m.stop()

verdict (answered to SMFIC_BODYEOB unless said otherwise):
  accept        SMFIR_CONTINUE
  accept_early  SMFIR_ACCEPT to SMFIC_CONNECT (nothing more is sent)
  reject        SMFIR_REPLYCODE "550 5.7.1 Rejected by the test milter"
  reject_multi  SMFIR_REPLYCODE with two lines
  reject_plain  SMFIR_REJECT
  tempfail      SMFIR_TEMPFAIL
  tempfail_code SMFIR_REPLYCODE "451 4.7.0 ..."
  discard       SMFIR_DISCARD
  headers       ADDHEADER X-Test-Milter, INSHEADER at 0 X-First, CHGHEADER Subject 1, continue
  quarantine    SMFIR_QUARANTINE "spam from the test milter", continue
  progress      three SMFIR_PROGRESS, then continue
  many_changes  changes more than the client keeps, then continue
  unknown       an unknown reply, then continue (ignored)
  rcpt_reject   SMFIR_REPLYCODE 550 to every SMFIC_RCPT
  skip          SMFIR_SKIP to the first body chunk, continue at EOB
  hang          never answers SMFIC_BODYEOB (holds the connection until stopped)
  garbage       a packet with a length over the client's bound
  bad_optneg    answers SMFIC_OPTNEG with SMFIR_CONTINUE
protocol: the SMFIP_ flags the milter asks for in its SMFIC_OPTNEG reply (steps it does not
want, or does not answer: it then sends no reply to them).
"""

import os
import socket
import struct
import threading

SMFIP_NOCONNECT = 0x01
SMFIP_NOHELO = 0x02
SMFIP_NOMAIL = 0x04
SMFIP_NORCPT = 0x08
SMFIP_NOBODY = 0x10
SMFIP_NOHDRS = 0x20
SMFIP_NOEOH = 0x40
SMFIP_NR_HDR = 0x80
SMFIP_NODATA = 0x200
SMFIP_SKIP = 0x400
SMFIP_NR_CONN = 0x1000
SMFIP_NR_HELO = 0x2000
SMFIP_NR_MAIL = 0x4000
SMFIP_NR_RCPT = 0x8000
SMFIP_NR_DATA = 0x10000
SMFIP_NR_EOH = 0x40000
SMFIP_NR_BODY = 0x80000

# The reply each command would get, and the flag that says it gets none.
_NO_REPLY_FLAG = {b"C": SMFIP_NR_CONN, b"H": SMFIP_NR_HELO, b"M": SMFIP_NR_MAIL,
                  b"R": SMFIP_NR_RCPT, b"T": SMFIP_NR_DATA, b"L": SMFIP_NR_HDR,
                  b"N": SMFIP_NR_EOH, b"B": SMFIP_NR_BODY}


def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def split_nul(data):
    """The NUL-terminated strings of a packet's data, as str."""
    parts = data.split(b"\0")
    return [p.decode("latin-1") for p in parts[:-1]]


class TestMilter:
    __test__ = False  # not a pytest class

    def __init__(self, verdict="accept", protocol=0, actions=0x01 | 0x10 | 0x20,
                 unix_path=None, host="127.0.0.1"):
        self.verdict = verdict
        self.protocol = protocol
        self.actions = actions
        self.unix_path = unix_path
        self.host = host
        self.conversations = []
        self.offered = None  # (version, actions, protocol) of the client's SMFIC_OPTNEG
        self._stop = threading.Event()
        self._threads = []
        self._conns = []

    def start(self):
        if self.unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(self.unix_path)
            self.spec = "unix:" + self.unix_path
        elif ":" in self.host:
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            self.sock.bind((self.host, 0))
            self.spec = "inet:[%s]:%d" % (self.host, self.sock.getsockname()[1])
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind((self.host, 0))
            self.spec = "inet:%s:%d" % (self.host, self.sock.getsockname()[1])
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=10)
        self.sock.close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(30)
            self._conns.append(conn)
            log = []
            self.conversations.append(log)
            t = threading.Thread(target=self._serve, args=(conn, log), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn, log):
        try:
            self._conversation(conn, log)
        except (EOFError, OSError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _reply_to(self, cmd):
        """Whether the client waits for a reply to cmd."""
        flag = _NO_REPLY_FLAG.get(cmd)
        return not (flag and self.protocol & flag)

    def _conversation(self, conn, log):
        v = self.verdict
        body_chunks = 0
        while True:
            (length,) = struct.unpack(">I", _recv_exact(conn, 4))
            data = _recv_exact(conn, length)
            cmd, rest = data[:1], data[1:]
            log.append((cmd, rest))
            if cmd == b"O":
                self.offered = struct.unpack(">III", rest[:12])
                if v == "bad_optneg":
                    conn.sendall(packet(b"c"))
                    continue
                conn.sendall(packet(b"O", struct.pack(">III", 6, self.actions, self.protocol)))
            elif cmd in (b"D",):
                continue
            elif cmd == b"Q":
                return
            elif cmd == b"E":
                self._end_of_message(conn, v)
            elif cmd == b"C" and v == "accept_early":
                conn.sendall(packet(b"a"))
            elif cmd == b"R" and v == "rcpt_reject":
                conn.sendall(packet(b"y", b"550 5.1.1 No such user here\0"))
            elif cmd == b"B" and v == "skip" and body_chunks == 0 and self._reply_to(cmd):
                body_chunks += 1
                conn.sendall(packet(b"s"))
            elif self._reply_to(cmd):
                if cmd == b"B":
                    body_chunks += 1
                conn.sendall(packet(b"c"))

    def _end_of_message(self, conn, v):
        out = b""
        if v == "reject":
            out += packet(b"y", b"550 5.7.1 Rejected by the test milter\0")
        elif v == "reject_multi":
            out += packet(b"y", b"550-5.7.1 Rejected by the test milter\r\n"
                          b"550 5.7.1 See the second line\0")
        elif v == "reject_plain":
            out += packet(b"r")
        elif v == "tempfail":
            out += packet(b"t")
        elif v == "tempfail_code":
            out += packet(b"y", b"451 4.7.0 Test milter busy\0")
        elif v == "discard":
            out += packet(b"d")
        elif v == "headers":
            out += packet(b"h", b"X-Test-Milter\0checked by the test milter\0")
            out += packet(b"i", struct.pack(">I", 0) + b"X-First\0inserted\n\tfolded\0")
            out += packet(b"m", struct.pack(">I", 1) + b"Subject\0changed subject\0")
            out += packet(b"c")
        elif v == "quarantine":
            out += packet(b"q", b"spam from the test milter\0") + packet(b"c")
        elif v == "progress":
            out += packet(b"p") * 3 + packet(b"c")
        elif v == "many_changes":
            for i in range(150):
                out += packet(b"h", b"X-Many-%d\0%d\0" % (i, i))
            out += packet(b"c")
        elif v == "unknown":
            out += packet(b"Z", b"whatever") + packet(b"h", b"X-After\0yes\0") + packet(b"c")
        elif v == "hang":
            self._stop.wait(120)
            return
        elif v == "garbage":
            out += struct.pack(">I", 10 * 1024 * 1024) + b"y550 too big"
        else:
            out += packet(b"c")
        conn.sendall(out)
