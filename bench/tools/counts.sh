#!/bin/bash
# bench/tools/counts.sh: bench/profile --counts (see there). Load-independent measures of
# inbound SMTP (smtp-source -s 32 -l 4096, one message per connection) for each binary.
#
#   counts.sh OUTDIR COUNT BINARY...
set -euo pipefail
OUT=$1
COUNT=$2
shift 2
command -v perf >/dev/null && command -v smtp-source >/dev/null ||
	{ echo "counts: needs perf and smtp-source (postfix)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "counts: run as root (perf tracepoints)" >&2; exit 1; }
mkdir -p "$OUT"
D=$(mktemp -d "$OUT/counts.XXXXXX")
trap 'rm -rf "$D"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mx.example.org" \
	-keyout "$D/key.pem" -out "$D/cert.pem" >/dev/null 2>&1
TRIM_WAIT=13 # MEMORY_TRIM_IDLE_SECONDS (10) and a margin
EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_fsync,syscalls:sys_enter_pwritev2
EVENTS=$EVENTS,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_write
EVENTS=$EVENTS,context-switches

free_port() {
	local p=$1
	while [ -n "$(ss -ltnH "sport = :$p" 2>/dev/null)" ]; do p=$((p + 1)); done
	echo "$p"
}

one() { # one BINARY
	local bin=$1 smtp pop pid loops idle after trimmed perf
	smtp=$(free_port 24800)
	pop=$(free_port $((smtp + 1)))
	rm -rf "$D/run"
	mkdir -p "$D/run/spool"
	cat >"$D/run/config.json" <<J
{ "SMTPPort": $smtp, "POP3Port": $pop, "Hostname": "mx.example.org", "ListenAddress": "127.0.0.1",
  "SubmissionPort": 0, "SubmissionTLSPort": 0, "SpoolPath": "$D/run/spool",
  "MaxConnections": 5000, "MaxConnectionsPerIP": 5000,
  "Servers": [{"Domain": "example.org", "MailboxPassword": "benchpw",
    "TLSKeyPath": "$D/key.pem", "TLSCertPath": "$D/cert.pem", "MaildropPath": "$D/run/maildrop"}] }
J
	"$bin" "$D/run/config.json" >"$D/run/log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		[ -n "$(ss -ltnH "sport = :$smtp" 2>/dev/null)" ] && break
		sleep 0.1
	done
	if [ -z "$(ss -ltnH "sport = :$smtp" 2>/dev/null)" ]; then
		echo "== $bin: did not start (it may not read this config):"
		tail -3 "$D/run/log"
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" || true
		return 0
	fi
	rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
	load() {
		smtp-source -N -s 32 -m "$1" -l 4096 -M client.example.net -f sender@example.net \
			-t rcpt@example.org "127.0.0.1:$smtp" >/dev/null
	}
	# Threads named loopN; a build without them runs its one loop on the main thread.
	loops=$(for t in /proc/"$pid"/task/*; do
		if grep -q '^loop' "$t/comm"; then echo "${t##*/}"; fi
	done | tr '\n' ' ')
	[ -n "$loops" ] || loops=$pid
	idle=$(rss)
	load 500 # starts the workers, which perf -p only sees if they exist when it attaches
	perf stat -x, -e "$EVENTS" --per-thread -p "$pid" -o "$D/run/perf.csv" &
	perf=$!
	sleep 1
	load "$COUNT"
	kill -INT "$perf"
	wait "$perf" || true
	after=$(rss)
	sleep "$TRIM_WAIT"
	trimmed=$(rss)
	echo "== $bin (MAILPOPBOX_LOOPS=${MAILPOPBOX_LOOPS:-one per CPU})"
	echo "messages=$COUNT stored=$(find "$D/run/maildrop/new" -type f | wc -l) (of $((COUNT + 500)))"
	/usr/bin/python3 - "$D/run/perf.csv" "$pid" "$loops" "$COUNT" <<'PY'
import collections, sys
path, pid, loops, n = sys.argv[1], sys.argv[2], sys.argv[3].split(), int(sys.argv[4])
agg = collections.defaultdict(collections.Counter)
for line in open(path):
    f = line.strip().split(",")
    if len(f) < 4 or not f[0] or f[0].startswith("#"):
        continue
    try:
        v = int(f[1])
    except ValueError:
        continue
    tid = f[0].rsplit("-", 1)[-1]
    role = "loops" if tid in loops else "main" if tid == pid else "workers"
    agg[role][f[3]] += v
    agg["all"][f[3]] += v
print("per message     syscalls  fsync pwritev2  futex epoll_ctl  write  ctx-switches")
for role in ("loops", "workers", "main", "all"):
    c = agg[role]
    print(f"{role:12} {c['raw_syscalls:sys_enter'] / n:11.2f} {c['syscalls:sys_enter_fsync'] / n:6.2f} "
          f"{c['syscalls:sys_enter_pwritev2'] / n:8.2f} {c['syscalls:sys_enter_futex'] / n:6.2f} "
          f"{c['syscalls:sys_enter_epoll_ctl'] / n:9.2f} {c['syscalls:sys_enter_write'] / n:6.2f} "
          f"{c['context-switches'] / n:13.2f}")
PY
	echo "VmRSS KiB: idle $idle, after the load $after, trimmed $trimmed" \
		"($(grep -c memory_released "$D/run/log" || true) trim logged); threads $(ls "/proc/$pid/task" | wc -l)"
	kill -TERM "$pid"
	wait "$pid" || true
}

for bin in "$@"; do
	one "$bin"
done | tee "$OUT/counts.txt"
