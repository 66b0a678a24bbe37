#!/usr/bin/python3
"""report: Markdown tables from bench/run's results.tsv (section, server, metric, value per
line, one line per repetition). Figures are medians with min-max over the repetitions.

    report.py RESULTS.tsv MODE IDLE_CONNS TP_COUNT LAT_COUNT POP_SMALL POP_LARGE
"""
import statistics
import sys
from collections import defaultdict

NAMES = {"mailpopbox": "mailpopbox", "postfix": "Postfix", "dovecot": "Dovecot",
         "opensmtpd": "OpenSMTPD", "disk": "disk limit",
         "floor": "floor (libraries + 1 TLS context)",
         "before": "mailpopbox (before)", "go": "Go mailpopbox (original)",
         "push": "mailpopbox with a Destination",
         "verify-off": "mailpopbox, checks off", "verify-on": "mailpopbox, SPF + DKIM + DMARC",
         "milter": "mailpopbox + rspamd (milter)", "postfix-milter": "Postfix + rspamd (milter)"}
# Peers that exist only when bench/run was asked for them (--baseline, --go-source): their rows
# are left out of a table that has no figure of theirs; why, if known, is said under the report.
OPTIONAL = ("before", "go")

data = defaultdict(list)  # (section, server, metric) -> [float]
na = {}
notes = []  # (server, text) from "note" lines


def load(path):
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            section, server, metric, value = parts
            if section == "na":
                na[server] = value
                continue
            if section == "note":
                notes.append((server, value))
                continue
            try:
                data[(section, server, metric)].append(float(value))
            except ValueError:
                pass


def values(section, server, metric):
    return data.get((section, server, metric), [])


def med(section, server, metric):
    v = values(section, server, metric)
    return statistics.median(v) if v else None


def fmt(x, digits):
    if x is None:
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def cell(section, server, metric, digits=0, scale=1.0):
    v = [x * scale for x in values(section, server, metric)]
    if not v:
        return f"n/a: {na[server]}" if server in na else "n/a"
    m = statistics.median(v)
    if len(v) == 1:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ({fmt(min(v), digits)}–{fmt(max(v), digits)})"


def ratio(x, base):
    if x is None or base is None or base == 0:
        return "—"
    return f"{x / base:.2f}×"


def shown(section, servers):
    """SERVERS without the optional peers that have no figure in SECTION, nor those left out
    on purpose (bench/run --without)."""
    return [s for s in servers
            if not na.get(s, "").startswith("left out")
            and (s not in OPTIONAL or any(k[0] == section and k[1] == s for k in data))]


def paired(section, a, b, metric):
    """A's figure divided by B's, repetition by repetition (the repetitions are interleaved, so
    each pair ran under the same conditions): (min, max), or None."""
    x, y = values(section, a, metric), values(section, b, metric)
    if len(x) < 2 or len(x) != len(y) or 0 in y:
        return None
    r = [p / q for p, q in zip(x, y)]
    return min(r), max(r)


def times(a, b, section=None, metric=None, sa=None, sb=None):
    """"A/B×" of the medians, with the per-repetition range when there is one."""
    if a is None or b is None or b == 0:
        return "—"
    text = f"{a / b:.2f}×"
    if section:
        pr = paired(section, sa, sb, metric)
        if pr:
            text += f" ({pr[0]:.2f}–{pr[1]:.2f})"
    return text


def spread(section, server, metric):
    """Run-to-run spread: (max − min) / median of SERVER's repetitions, in percent."""
    v = values(section, server, metric)
    m = statistics.median(v) if v else 0
    if len(v) < 2 or m == 0:
        return "—"
    return f"{100 * (max(v) - min(v)) / m:.0f}%"


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()


def throughput_ratios(mpb):
    """Issue 12's inbound targets: mailpopbox's rate divided by the Go original's and by
    Postfix's (medians, and the range of the per-repetition ratios)."""
    peers = [p for p in ("go", "postfix") if values("tp", p, "rate")]
    ours = [s for s in (mpb, "before") if values("tp", s, "rate")]
    if not peers or not ours:
        return
    print("Inbound ratios, issue 12's target ≥ 1.5× the Go original and ≥ 5× Postfix "
          "(ratio of the medians; in brackets the range of the ratios repetition by repetition):")
    print()
    rows = []
    for s in ours:
        for metric, label in (("rate", "messages/s (stored)"), ("accept_rate", "accepted/s")):
            if not values("tp", s, metric):
                continue
            rows.append([NAMES[s], label] + [
                times(med("tp", s, metric), med("tp", p, metric), "tp", metric, s, p)
                for p in peers])
    table(["server", "figure"] + [f"÷ {NAMES[p]}" for p in peers], rows)


def before_after():
    """mailpopbox against the --baseline build, row by row, with each one's run-to-run spread
    (the noise a difference has to exceed)."""
    if not any(k[1] == "before" for k in data):
        return
    print("## Before and after (mailpopbox against the --baseline build, same run)")
    print()
    print("\"after ÷ before\": ratio of the medians, in brackets the range of the ratios "
          "repetition by repetition (the servers ran interleaved). Spread: (max − min) ÷ median "
          "of one server's repetitions, the run-to-run noise of that row.")
    print()
    rows = []
    for section, metric, label, better in (
            ("tp", "rate", "inbound messages/s", "higher"),
            ("tp", "accept_rate", "inbound accepted/s", "higher"),
            ("lat", "median_ms", "latency median ms", "lower"),
            ("lat", "p99_ms", "latency p99 ms", "lower"),
            ("mem-idle", "rss_kb", "idle RSS KiB", "lower"),
            ("mem-smtp", "per_conn_kb", "KiB per idle SMTP connection", "lower"),
            ("mem-pop3", "per_conn_kb", "KiB per idle POP3/TLS connection", "lower"),
            ("mem-after", "rss_kb", "RSS after the whole run KiB", "lower"),
            ("pop3-small", "wall", "POP3 4 KB maildrop, wall s", "lower"),
            ("pop3-large", "wall", "POP3 1 MB maildrop, wall s", "lower"),
            ("tls", "rate", "TLS handshakes/s", "higher")):
        a, b = med(section, "mailpopbox", metric), med(section, "before", metric)
        if a is None or b is None:
            continue
        digits = 2 if metric in ("median_ms", "p99_ms", "per_conn_kb") else 3 if metric == "wall" else 0
        rows.append([label, cell(section, "before", metric, digits), cell(section, "mailpopbox", metric, digits),
                     times(a, b, section, metric, "mailpopbox", "before"), better,
                     spread(section, "before", metric), spread(section, "mailpopbox", metric)])
    table(["row", "before", "after", "after ÷ before", "better is", "spread before", "spread after"], rows)


def push_rows(tp_count):
    """Issue 13: push into a local Dovecot (bench/run's measure_push), against its targets."""
    if not any(k[0].startswith("push-") for k in data) and "push" not in na:
        return
    print("## 6. Push into a local Dovecot IMAP server (issue 13)")
    print()
    if "push" in na:
        print(f"n/a: {na['push']}")
        print()
        return
    lat_n = values("push-lat", "push", "n")
    lost = values("push-lat", "push", "lost")
    tp_pushed = values("push-tp", "push", "pushed")
    print("Latency: bench/tools/pushlat.py sends 4 KB messages over one SMTP session at 10 per "
          "second and times each from its 250 to its file appearing in Dovecot's Maildir "
          f"(scanned every 2 ms); {fmt(statistics.median(lat_n), 0) if lat_n else '?'} messages "
          f"per repetition, {fmt(sum(lost), 0) if lost else '?'} never seen. Push throughput: "
          f"{fmt(statistics.median(tp_pushed), 0) if tp_pushed else '?'} messages of 4 KB wait "
          "in the maildrop when mailpopbox starts; messages per second from its start until "
          "the last one is a file at Dovecot (bench/tools/pushwait.py). Inbound: row 1's "
          f"smtp-source run ({int(tp_count):,} × 4 KB, 32 sessions) against mailpopbox with a "
          "Destination (KeepCopy on, so each message stays to be counted) and without, "
          "interleaved; \"then at Dovecot\" is how long after that run Dovecot had them all.")
    print()
    with_rate, without_rate = med("push-smtp", "push", "rate"), med("push-smtp", "mailpopbox", "rate")
    with_acc = med("push-smtp", "push", "accept_rate")
    without_acc = med("push-smtp", "mailpopbox", "accept_rate")
    rows = [
        ["push latency median, ms", cell("push-lat", "push", "median_ms", 1), "≤ 1,000"],
        ["push latency p99, ms", cell("push-lat", "push", "p99_ms", 1), "≤ 3,000"],
        ["push latency max, ms", cell("push-lat", "push", "max_ms", 1), "—"],
        ["push throughput, messages/s", cell("push-tp", "push", "rate"), "≥ 500"],
        ["… after the first message (no start-up), messages/s",
         cell("push-tp", "push", "steady_rate"), "—"],
        ["… first message at Dovecot after the start, s",
         cell("push-tp", "push", "first_seconds", 3), "—"],
        ["inbound messages/s without a Destination", cell("push-smtp", "mailpopbox", "rate"), "—"],
        ["inbound messages/s with a Destination", cell("push-smtp", "push", "rate"), "—"],
        ["with ÷ without (messages/s)",
         times(with_rate, without_rate, "push-smtp", "rate", "push", "mailpopbox"), "≥ 0.80×"],
        ["with ÷ without (accepted/s)",
         times(with_acc, without_acc, "push-smtp", "accept_rate", "push", "mailpopbox"), "≥ 0.80×"],
        ["then at Dovecot after, s", cell("push-smtp", "push", "drain_seconds", 1), "—"],
    ]
    table(["row", "figure", "issue 13's target"], rows)


def verify_rows(tp_count):
    """Issue 14: sender checks and the milter (bench/run's measure_verify)."""
    if not any(k[0] == "verify" for k in data) and "verify" not in na:
        return
    print("## 7. Sender verification and a milter (issue 14)")
    print()
    if "verify" in na:
        print(f"n/a: {na['verify']}")
        print()
        return
    print(f"smtp-source -F: {int(tp_count):,} copies of one DKIM-signed 4 KB message "
          "(bench/tools/signedmsg.py: From sender@example.net, rsa-sha256 2048-bit key) over 32 "
          "sessions from 127.0.0.1, with a local dnsmasq serving SPF (pass), the DKIM key and "
          "DMARC p=reject for example.net, so every check runs and passes. Checks off and on "
          "are the same binary and config but for VerifySenders; the milter rows send the same "
          "messages through a private rspamd (proxy worker in milter mode, no Redis) from "
          "mailpopbox (checks on) and from Postfix (smtpd_milters). Interleaved repetitions.")
    print()
    on, off = med("verify", "verify-on", "rate"), med("verify", "verify-off", "rate")
    mil, pfm = med("verify", "milter", "rate"), med("verify", "postfix-milter", "rate")
    rows = [
        ["checks off, messages/s", cell("verify", "verify-off", "rate"), "—"],
        ["SPF + DKIM + DMARC on, messages/s", cell("verify", "verify-on", "rate"), "—"],
        ["on ÷ off", times(on, off, "verify", "rate", "verify-on", "verify-off"), "≥ 0.70×"],
        ["mailpopbox + rspamd, messages/s", cell("verify", "milter", "rate"), "—"],
        ["Postfix + rspamd, messages/s", cell("verify", "postfix-milter", "rate"), "—"],
        ["mailpopbox + rspamd ÷ Postfix + rspamd",
         times(mil, pfm, "verify", "rate", "milter", "postfix-milter"), "reported"],
    ]
    table(["row", "figure", "issue 14's target"], rows)
    verdicts = sorted({v for (srv, v) in notes if srv == "verify-verdict"})
    if verdicts:
        print("The Authentication-Results of a stored message (checks on): " +
              "; ".join(f"`{v}`" for v in verdicts))
        print()


def main():
    path, mode, idle_conns, tp_count, lat_count, pop_small, pop_large, tp_timeout = sys.argv[1:9]
    load(path)
    mpb = "mailpopbox"

    print("Each figure: median over the repetitions, (min–max) when there are several. "
          "\"× mailpopbox\" is the server's figure divided by mailpopbox's.")
    print()

    # 1. throughput
    print(f"## 1. Inbound durable throughput")
    print()
    print(f"`smtp-source -c -N -s 32 -m {int(tp_count):,} -l 4096` (32 parallel sessions, one "
          "message per connection, a different local part per message); messages per second "
          "from the first connection until the last message is a file in the Maildir (for Postfix "
          "and OpenSMTPD: until their queue has drained into it). A run still unfinished after "
          f"{tp_timeout} s is stopped there, and its rate is what it stored by then divided by "
          "the time. Higher is better. The disk limit "
          "is bench/src/disksync.c: 32 threads doing write 4 KB + fsync + rename into new/ + "
          "fsync(new/) per file, the same count of files.")
    print()
    rows = []
    base = med("tp", mpb, "rate")
    disk = med("tp", "disk", "rate")
    for s in shown("tp", ("disk", "mailpopbox", "before", "go", "postfix", "opensmtpd")):
        r = med("tp", s, "rate")
        stored = values("tp", s, "stored")
        sent = values("tp", s, "sent")
        if s == "disk":
            st = "—"
        elif stored:
            st = f"{min(stored):,.0f}–{max(stored):,.0f} of {int(tp_count):,}" if min(stored) != max(stored) \
                else f"{stored[0]:,.0f} of {int(tp_count):,}"
            bounded = values("tp", s, "bounded")
            if bounded and max(bounded) > 0:
                st += " (stopped at the time bound)"
            elif sent and min(sent) < int(tp_count):
                st += " (smtp-source reported errors)"
        else:
            st = "n/a"
        frac = f"{100 * r / disk:.0f}%" if r is not None and disk else "—"
        drops = values("tp", s, "listen_drops")
        accepted = cell("tp", s, "accept_rate") if s != "disk" and values("tp", s, "accept_rate") else "—"
        rows.append([NAMES[s], cell("tp", s, "rate"), accepted, st, ratio(r, base), frac,
                     fmt(statistics.median(drops), 0) if drops else "—"])
    table(["server", "messages/s", "accepted/s", "stored", "× mailpopbox", "of disk limit",
           "listen-queue drops"], rows)
    print("\"accepted/s\": messages over smtp-source's own time, the rate of 250 replies to DATA "
          "(only for runs where every message got one). mailpopbox writes a message into the "
          "Maildir and fsyncs it before its 250, so for it the two rates are the same; Postfix "
          "and OpenSMTPD answer once the message is in their fsync'd queue and deliver later.")
    print()
    if values("tp", "go", "rate"):
        print("The Go original (rsesek/mailpopbox) writes each message as one file in a flat "
              "maildrop directory (create, write, close) before its 250 and never fsyncs, so its 250 "
              "promises nothing durable; it listens on every address (it has no listen-address "
              "setting), the clients reach it on 127.0.0.1 like the others.")
        print()
    print("\"listen-queue drops\": connection attempts the kernel dropped during the run because the "
          "server's listen queue was full (TcpExt ListenDrops); each one costs that client a SYN "
          "retransmission timeout (1 s, then 3 s, 7 s...). OpenSMTPD listens with a backlog of 5 "
          "(SMTPD_BACKLOG, compiled in).")
    print()
    throughput_ratios(mpb)

    # 2. latency
    print("## 2. Latency, one session at a time")
    print()
    print(f"bench/tools/smtplat.py: {int(lat_count):,} messages of 4 KB, one after the other, each in "
          "its own connection (connect, EHLO, transaction, QUIT); the time from sending MAIL FROM to "
          "the reply to the end of DATA. mailpopbox's 250 means the message is in the Maildir; "
          "Postfix's and OpenSMTPD's mean it is in their (fsync'd) queue; the Go original's that "
          "it is written to its maildrop, not fsync'd. Lower is better.")
    print()
    rows = []
    bm, bp = med("lat", mpb, "median_ms"), med("lat", mpb, "p99_ms")
    for s in shown("lat", ("mailpopbox", "before", "go", "postfix", "opensmtpd")):
        rows.append([NAMES[s], cell("lat", s, "median_ms", 2), ratio(med("lat", s, "median_ms"), bm),
                     cell("lat", s, "p99_ms", 2), ratio(med("lat", s, "p99_ms"), bp),
                     cell("lat", s, "session_median_ms", 2)])
    table(["server", "median ms", "× mailpopbox", "p99 ms", "× mailpopbox", "whole session, median ms"], rows)

    # 3. memory
    print("## 3. Memory")
    print()
    print(f"Sum of VmRSS (/proc/PID/status) over all the server's processes (the master and every "
          "descendant), in KiB; PSS (shared pages divided among the processes sharing them) for "
          f"reference. Idle = freshly started, before any client. Then {int(idle_conns):,} idle SMTP connections "
          f"(each has received its 220 greeting), or {int(idle_conns):,} idle POP3 connections on "
          "the implicit-TLS port (handshake done, +OK greeting received); every one of these "
          "figures is taken on a freshly started server, right after its idle figure. "
          "\"per connection\" = (RSS with the connections − that idle RSS) / connections. "
          "\"After the whole run\" is the same servers' memory once every measurement is over "
          "and the clients have been gone for 15 s. Lower is better. The \"floor\" row is no server: "
          "bench/src/rssfloor.c, a process linking exactly the libraries mailpopbox links (OpenSSL, "
          "libevent, jansson, OpenDKIM, c-ares, libxcrypt), each initialised or called once, "
          "holding one TLS server context with the same certificate and key, and nothing of "
          "mailpopbox's own; it is measured the same way once per repetition, while no mailpopbox "
          "runs, right before mailpopbox's first idle figure.")
    print()
    rows = []
    base_idle = med("mem-idle", mpb, "rss_kb")
    for state, label, servers in (
            ("idle", "idle", ("mailpopbox", "before", "floor", "postfix", "dovecot", "postfix+dovecot",
                              "opensmtpd")),
            ("smtp", f"{int(idle_conns):,} idle SMTP", ("mailpopbox", "before", "postfix", "opensmtpd")),
            ("pop3", f"{int(idle_conns):,} idle POP3/TLS", ("mailpopbox", "before", "dovecot")),
            ("after", "idle after the whole run", ("mailpopbox", "before", "postfix", "dovecot",
                                                   "opensmtpd"))):
        sec = "mem-" + state
        servers = [s for s in servers if s == "postfix+dovecot" or s in shown(sec, [s])]
        base = med(sec, mpb, "rss_kb")
        base_pss = med(sec, mpb, "pss_kb")
        for s in servers:
            if s == "postfix+dovecot":
                a, b = med(sec, "postfix", "rss_kb"), med(sec, "dovecot", "rss_kb")
                pa, pb = med(sec, "postfix", "pss_kb"), med(sec, "dovecot", "pss_kb")
                pr = med(sec, "postfix", "procs"), med(sec, "dovecot", "procs")
                if a is None or b is None:
                    continue
                rows.append([label, "Postfix + Dovecot", f"{pr[0] + pr[1]:.0f}", fmt(a + b, 0),
                             ratio(a + b, base), fmt(pa + pb, 0), ratio(pa + pb, base_pss), "—", "—"])
                continue
            if s == "floor" and not values(sec, s, "rss_kb"):
                continue
            rss = med(sec, s, "rss_kb")
            procs = med(sec, s, "procs")
            per, est = "—", "—"
            if state in ("smtp", "pop3") and rss is not None:
                e = med(sec, s, "established")
                est = fmt(e, 0) if e is not None else "?"
                if values(sec, s, "per_conn_kb"):
                    per = cell(sec, s, "per_conn_kb", 1) + " KiB"
            rows.append([label, NAMES[s], fmt(procs, 0) if procs is not None else "—",
                         cell(sec, s, "rss_kb"), ratio(rss, base), cell(sec, s, "pss_kb"),
                         ratio(med(sec, s, "pss_kb"), base_pss), est, per])
    table(["state", "server", "processes", "RSS KiB", "× mailpopbox", "PSS KiB", "× mailpopbox (PSS)",
           "connections", "per connection"], rows)
    mr, fr = med("mem-idle", mpb, "rss_kb"), med("mem-idle", "floor", "rss_kb")
    mp, fp = med("mem-idle", mpb, "pss_kb"), med("mem-idle", "floor", "pss_kb")
    if None not in (mr, fr, mp, fp):
        print(f"mailpopbox idle − floor (medians): {fmt(mr - fr, 0)} KiB RSS, {fmt(mp - fp, 0)} KiB "
              f"PSS: what mailpopbox itself adds to the {fmt(fr, 0)} KiB RSS ({fmt(fp, 0)} KiB PSS) "
              "that its libraries and one TLS context take before it does anything.")
        print()
    for server, text in notes:
        if server == "floor":
            print(text)
            print()
    print("Summed RSS counts a shared library once per process, so it overstates multi-process "
          "servers (Postfix with 1,000 smtpd processes most of all); PSS does not. Postfix's idle "
          "smtpd processes exit max_idle (100 s) after their clients leave; mailpopbox hands "
          "freed memory back to the system 10 s after its last connection closes "
          "(MEMORY_TRIM_IDLE_SECONDS in src/bounds.h).")
    print()

    # 4. POP3
    print("## 4. POP3 over TLS retrieval")
    print()
    print("bench/src/pop3bench.c: one implicit-TLS session: USER/PASS, STAT, LIST, UIDL, RETR of "
          "every message, QUIT (nothing deleted). Every server serves the same files (hard links; "
          "the Go original from a flat directory, each named NAME.msg); "
          "one uncounted Dovecot session first (it builds its index and moves new/ to cur/; the "
          "shared inodes make it warm the page cache for both). Wall time from connect to the QUIT reply; the "
          "client's own CPU time (user+sys, getrusage) shows it is not the bottleneck. Lower wall "
          "time is better.")
    print()
    rows = []
    for name, count, size in (("small", pop_small, "4 KB"), ("large", pop_large, "1 MB")):
        sec = "pop3-" + name
        base = med(sec, mpb, "wall")
        for s in shown(sec, ("mailpopbox", "before", "go", "dovecot")):
            w = med(sec, s, "wall")
            cpu = [u + y for u, y in zip(values(sec, s, "cpu_user"), values(sec, s, "cpu_sys"))]
            cpu_s = fmt(statistics.median(cpu), 3) if cpu else "n/a"
            rate = f"{int(count) / w:,.0f}" if w else "n/a"
            rows.append([f"{int(count):,} × {size}", NAMES[s], cell(sec, s, "wall", 3),
                         ratio(w, base), rate, cell(sec, s, "mb_per_s", 0), cpu_s])
    table(["maildrop", "server", "wall s", "× mailpopbox", "messages/s", "MB/s", "client CPU s"], rows)

    # 5. TLS
    print("## 5. TLS handshakes per second on the POP3 port")
    print()
    print("bench/src/tlsrate.c: 32 client threads, each looping connect + full TLS handshake (no "
          "session resumption, no tickets) + read the +OK greeting + close; RSA-2048 certificate, "
          "OpenSSL defaults (TLS 1.3, X25519). Client and server share the machine's CPUs; "
          "mailpopbox runs the handshake steps on its worker threads (at most 4), Dovecot in as many "
          "pop3-login processes as there are CPUs (process_min_avail), the Go original in one "
          "goroutine per connection (Go's crypto/tls, on every CPU). Higher is better.")
    print()
    rows = []
    base = med("tls", mpb, "rate")
    for s in shown("tls", ("mailpopbox", "before", "go", "dovecot")):
        r = med("tls", s, "rate")
        cpu = [u + y for u, y in zip(values("tls", s, "cpu_user"), values("tls", s, "cpu_sys"))]
        fails = values("tls", s, "failed")
        rows.append([NAMES[s], cell("tls", s, "rate"), ratio(r, base),
                     fmt(statistics.median(cpu), 1) if cpu else "n/a",
                     fmt(sum(fails), 0) if fails else "n/a"])
    table(["server", "handshakes/s", "× mailpopbox", "client CPU s", "failed handshakes"], rows)

    push_rows(tp_count)

    verify_rows(tp_count)

    before_after()

    if na:
        print("Not measured: " + "; ".join(f"{NAMES.get(k, k)}: {v}" for k, v in na.items()))
        print()


if __name__ == "__main__":
    main()
