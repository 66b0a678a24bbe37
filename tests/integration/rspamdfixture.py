"""A private rspamd (Debian's /usr/bin/rspamd) for the milter tests: its own minimal
configuration in a temporary directory, on top of the packaged rules (/etc/rspamd, so GTUBE
and the milter_headers module are the real ones), no redis, and two workers on loopback:

  normal        scans (bound to a port of its own)
  rspamd_proxy  milter = yes: the port mailpopbox's milter client talks to; upstream: normal

Its resolver points at a loopback port where nothing answers, so no test ever asks the real
DNS (network rules just time out quickly and add nothing). The controller and fuzzy workers
are not started.

    r = Rspamd(tmp_dir).start()    # r.spec: "inet:127.0.0.1:PORT"
    ...
    r.stop()
"""

import os
import socket
import subprocess
import time

from conftest import free_port

RSPAMD = "/usr/bin/rspamd"
RSPAMD_CONFDIR = "/etc/rspamd"
START_TIMEOUT = 60.0  # the first start compiles the rules; a sanitizer CI run is slow
STOP_GRACE_SECONDS = 10.0

CONFIG = """\
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    dns {{
        nameserver = ["{nameserver}"];
        timeout = 0.5s;
        retransmits = 1;
    }}
    local_addrs = [];
    hs_cache_dir = "$DBDIR";
}}
logging {{
    type = "file";
    filename = "{log}";
    level = "info";
}}
worker "normal" {{
    bind_socket = "127.0.0.1:{normal_port}";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{milter_port}";
    milter = yes;
    timeout = 60s;
    upstream "local" {{
        default = yes;
        self_scan = no;
        hosts = "127.0.0.1:{normal_port}";
    }}
    count = 1;
    discard_on_reject = false;
    quarantine_on_reject = false;
    reject_message = "Spam message rejected";
}}
"""

# rspamd's milter_headers module: X-Spamd-Result (symbols and score) and X-Spam-Status.
MILTER_HEADERS = """\
use = ["x-spamd-result", "x-spam-status"];
extended_spam_headers = true;
skip_local = false;
skip_authenticated = false;
"""

# No redis here: the modules that need it stay off instead of logging errors on each scan.
NO_REDIS_MODULES = ("greylist", "ratelimit", "neural", "reputation", "history_redis",
                    "replies", "dmarc_reports")


class Rspamd:
    def __init__(self, directory, nameserver=None):
        """nameserver: "IP:PORT" for rspamd's own DNS checks; None: a loopback port where
        nothing answers."""
        self.dir = str(directory)
        self.nameserver = nameserver
        self.proc = None
        self.log_path = os.path.join(self.dir, "rspamd.log")

    def _write_config(self):
        for sub in ("local.d", "override.d", "run", "db"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.milter_port = free_port()
        self.normal_port = free_port()
        nameserver = self.nameserver or "127.0.0.1:%d" % free_port(kinds=(socket.SOCK_DGRAM,))
        with open(os.path.join(self.dir, "rspamd.conf"), "w") as f:
            f.write(CONFIG.format(nameserver=nameserver, log=self.log_path,
                                  normal_port=self.normal_port, milter_port=self.milter_port))
        with open(os.path.join(self.dir, "local.d", "milter_headers.conf"), "w") as f:
            f.write(MILTER_HEADERS)
        for module in NO_REDIS_MODULES:
            with open(os.path.join(self.dir, "local.d", module + ".conf"), "w") as f:
                f.write("enabled = false;\n")
        self.spec = "inet:127.0.0.1:%d" % self.milter_port

    def start(self):
        self._write_config()
        args = [RSPAMD, "-f", "-c", os.path.join(self.dir, "rspamd.conf"),
                "--var=CONFDIR=" + RSPAMD_CONFDIR, "--var=LOCAL_CONFDIR=" + self.dir,
                "--var=RUNDIR=" + os.path.join(self.dir, "run"),
                "--var=DBDIR=" + os.path.join(self.dir, "db"),
                "--var=LOGDIR=" + self.dir]
        if os.geteuid() == 0:
            # rspamd refuses to run its workers as root unless told; the tests run as root in
            # containers, where the worker has nothing to protect but its temporary directory.
            args.append("--insecure")
        self.stderr = open(os.path.join(self.dir, "rspamd.stderr"), "w")
        self.proc = subprocess.Popen(args, stdout=self.stderr, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rspamd exited with %s:\n%s" % (self.proc.returncode,
                                                                   self.log_tail()))
            if all(self._listening(p) for p in (self.milter_port, self.normal_port)):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("rspamd did not listen within %ss:\n%s" % (START_TIMEOUT,
                                                                      self.log_tail()))

    @staticmethod
    def _listening(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def log_tail(self, lines=40):
        text = ""
        for path in (self.log_path, os.path.join(self.dir, "rspamd.stderr")):
            try:
                with open(path, errors="replace") as f:
                    text += "".join(f.readlines()[-lines:])
            except OSError:
                pass
        return text

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_GRACE_SECONDS)
        if self.proc:
            self.stderr.close()
        self.proc = None


def serve(directory, nameserver=None):
    """bench/run's rspamd: started as the tests start theirs, its milter port printed on
    stdout, stopped on SIGTERM or SIGINT."""
    import signal
    import sys

    rspamd = Rspamd(directory, nameserver).start()
    stop = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.append(True))
    print(rspamd.milter_port, flush=True)
    try:
        while not stop and rspamd.proc.poll() is None:
            time.sleep(0.2)
    finally:
        rspamd.stop()
    sys.exit(0 if stop else 1)


if __name__ == "__main__":
    import sys

    if len(sys.argv) not in (3, 4) or sys.argv[1] != "serve":
        sys.exit("usage: rspamdfixture.py serve DIR [NAMESERVER_IP:PORT]")
    serve(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)
