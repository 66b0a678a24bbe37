"""The install step and the operator's files (issue 6).

`meson install` into a temporary DESTDIR puts the binary, both manual pages, the example config
and the systemd unit where the prefix says, and the installed binary runs. The manual pages pass
`mandoc -T lint`. The example config sets every key the server knows and loads; every key is
documented in docs/config.md and mailpopbox.json(5); every command of `mailpopbox help` is in
mailpopbox(8).

The build directory is the one holding $MAILPOPBOX_BIN (<builddir>/src/mailpopbox).
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, free_port, require_tool

BINARY = Path(os.environ.get("MAILPOPBOX_BIN",
                             REPO_ROOT / "build" / "src" / "mailpopbox")).resolve()
EXAMPLE = REPO_ROOT / "deployment" / "config.example.json"
CONFIG_C = REPO_ROOT / "src" / "config.c"
CONFIG_MD = REPO_ROOT / "docs" / "config.md"
MAN_DIR = REPO_ROOT / "man"
UNIT_CONFIG = "/etc/mailpopbox/config.json"
# `meson install` rebuilds what is out of date first; a sanitizer build may take a while.
INSTALL_TIMEOUT = 1200
COMMAND_TIMEOUT = 60


def build_dir():
    directory = BINARY.parent.parent
    if not (directory / "meson-info").is_dir():
        pytest.fail(f"{BINARY} is not in <builddir>/src of a meson build directory "
                    f"(no {directory / 'meson-info'})")
    return directory


def run(command, timeout=COMMAND_TIMEOUT, **kwargs):
    return subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def config_keys():
    """(top-level keys, Servers keys) from the key tables in src/config.c."""
    found = re.findall(r'_KEY\(\s*struct (config|server_config),\s*"(\w+)"',
                       CONFIG_C.read_text())
    top = [name for kind, name in found if kind == "config"]
    server = [name for kind, name in found if kind == "server_config"]
    assert "Hostname" in top and "Domain" in server, "config.c's key tables not found"
    return top, server


def help_text():
    result = run([BINARY, "help"])
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- the install step --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Installs into a fresh DESTDIR. Returns (destdir, {file name: path in destdir},
    {file name: installed absolute path})."""
    builddir = build_dir()
    destdir = tmp_path_factory.mktemp("destdir")
    result = run(["meson", "install", "-C", builddir, "--destdir", destdir],
                 timeout=INSTALL_TIMEOUT)
    assert result.returncode == 0, f"meson install failed:\n{result.stdout}\n{result.stderr}"
    listing = run(["meson", "introspect", "--installed", builddir])
    assert listing.returncode == 0, listing.stderr
    paths = [Path(path) for path in json.loads(listing.stdout).values()]
    targets = {path.name: path for path in paths}
    assert len(targets) == len(paths), f"two installed files share a name: {paths}"
    in_destdir = {name: destdir / path.relative_to("/") for name, path in targets.items()}
    return destdir, in_destdir, targets


def test_install_puts_every_file_under_destdir(installed):
    destdir, files, targets = installed
    expected = {
        "mailpopbox": "sbin",
        "mailpopbox.8": "man8",
        "mailpopbox.json.5": "man5",
        "config.example.json": "mailpopbox",
        "mailpopbox.service": "system",
    }
    for name, parent in expected.items():
        assert name in files, f"{name} is not installed (meson introspect --installed)"
        assert files[name].is_file(), f"{name} not found in DESTDIR at {files[name]}"
        assert targets[name].parent.name == parent, f"{name} installed to {targets[name]}"
    assert os.access(files["mailpopbox"], os.X_OK)
    assert targets["mailpopbox.service"].parts[-4:-1] == ("lib", "systemd", "system")
    installed_files = [p for p in destdir.rglob("*") if p.is_file()]
    assert sorted(installed_files) == sorted(files.values()), \
        "files in DESTDIR that meson does not list, or listed files missing"


def test_installed_binary_runs(installed):
    _, files, _ = installed
    project = json.loads(run(["meson", "introspect", "--projectinfo", build_dir()]).stdout)
    result = run([files["mailpopbox"], "version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mailpopbox {project['version']}"


def test_installed_example_config_is_the_one_in_the_repository(installed):
    _, files, _ = installed
    assert files["config.example.json"].read_bytes() == EXAMPLE.read_bytes()


def test_installed_unit_starts_the_installed_binary_without_iptables(installed):
    _, files, targets = installed
    unit = files["mailpopbox.service"].read_text()
    [exec_start] = re.findall(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    assert exec_start.split() == [str(targets["mailpopbox"]), UNIT_CONFIG]
    assert not re.search(r"^Exec.*iptables", unit, re.MULTILINE), "the server binds its ports"
    assert re.search(r"^AmbientCapabilities=CAP_NET_BIND_SERVICE$", unit, re.MULTILINE)
    assert re.search(r"^User=mailpopbox$", unit, re.MULTILINE)
    assert re.search(r"^ReadWritePaths=/var/mail /var/spool/mailpopbox$", unit, re.MULTILINE)
    # The push Destination's OAuth token file lives in /var/lib/mailpopbox (docs/install.md 9).
    assert re.search(r"^StateDirectory=mailpopbox$", unit, re.MULTILINE)


def system_service_syscalls():
    """The system calls in systemd's @system-service set, expanded."""
    analyze = require_tool("systemd-analyze", "systemd")
    result = run([analyze, "syscall-filter"])
    assert result.returncode == 0, f"systemd-analyze syscall-filter: {result.stderr}"
    groups, current = {}, None
    for line in result.stdout.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.split()[0], [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())

    def expand(group, seen):
        names = set()
        for entry in groups.get(group, []):
            if entry.startswith("@"):
                if entry not in seen:
                    seen.add(entry)
                    names |= expand(entry, seen)
            else:
                names.add(entry)
        return names
    names = expand("@system-service", set())
    assert names, "systemd-analyze syscall-filter listed no @system-service calls"
    return names


def test_unit_allows_the_raw_system_calls_the_server_makes():
    """SystemCallFilter=@system-service kills the server on any other system call: the ones
    src/ makes through syscall(2) (Landlock's, in systemd 252) must be listed in the unit."""
    used = set()
    for source in (REPO_ROOT / "src").rglob("*.c"):
        used |= set(re.findall(r"\bSYS_([a-z0-9_]+)", source.read_text()))
    unit = (REPO_ROOT / "deployment" / "mailpopbox.service").read_text()
    listed = set()
    for line in re.findall(r"^SystemCallFilter=(.*)$", unit, re.MULTILINE):
        listed |= set(line.split())
    assert "@system-service" in listed
    in_set = system_service_syscalls()
    missing = sorted(name for name in used if name not in in_set and name not in listed)
    assert not missing, f"add SystemCallFilter={' '.join(missing)} to the unit"


def test_installed_unit_passes_systemd_analyze_verify(installed, tmp_path):
    analyze = require_tool("systemd-analyze", "systemd")
    require_tool("man", "man-db")  # verify runs man(1) for the unit's Documentation= pages
    destdir, files, targets = installed
    # verify wants the ExecStart binary and the Documentation= pages to exist.
    unit = files["mailpopbox.service"].read_text().replace(
        str(targets["mailpopbox"]), str(files["mailpopbox"]))
    copy = tmp_path / "mailpopbox.service"
    copy.write_text(unit)
    manpath = files["mailpopbox.8"].parent.parent
    result = run([analyze, "verify", copy], env={**os.environ, "MANPATH": str(manpath)})
    about_unit = [line for line in (result.stdout + result.stderr).splitlines()
                  if "mailpopbox.service" in line]
    assert result.returncode == 0 and not about_unit, "\n".join(about_unit) or result.stderr


def test_installed_man_pages_pass_mandoc_lint(installed):
    mandoc = require_tool("mandoc", "mandoc")
    _, files, _ = installed
    for name in ("mailpopbox.8", "mailpopbox.json.5"):
        result = run([mandoc, "-T", "lint", "-W", "warning", files[name]])
        assert result.returncode == 0 and not result.stdout.strip() and \
            not result.stderr.strip(), f"mandoc -T lint on {name}:\n{result.stdout}{result.stderr}"


# --- keeping the docs in step with the code ---------------------------------------------------

def test_example_config_sets_every_key():
    top, server = config_keys()
    example = json.loads(EXAMPLE.read_text())
    assert sorted(example) == sorted(top), "deployment/config.example.json top-level keys"
    assert example["Servers"], "the example has no Servers entry"
    for entry in example["Servers"]:
        assert sorted(entry) == sorted(server), "deployment/config.example.json Servers keys"


def test_every_key_is_documented_in_config_md_and_the_man_page():
    top, server = config_keys()
    markdown = CONFIG_MD.read_text()
    manual = (MAN_DIR / "mailpopbox.json.5").read_text()
    for key in top + server:
        assert re.search(rf"^\| `{key}` \|", markdown, re.MULTILINE), \
            f"{key} has no row in docs/config.md"
        assert re.search(rf"^\.It Cm {key} Pq ", manual, re.MULTILINE), \
            f"{key} has no entry in man/mailpopbox.json.5"


def test_every_command_of_help_is_in_the_man_page():
    synopsis = (MAN_DIR / "mailpopbox.8").read_text().split(".Sh DESCRIPTION")[0]
    listed = set(re.findall(r"^\.Cm (\S+)$", synopsis, re.MULTILINE))
    text = help_text()
    usage = [line for line in text.splitlines() if re.match(r"(usage:)?\s+mailpopbox ", line)]
    in_help = set(re.findall(r"mailpopbox ([a-z][a-z-]+)\b", "\n".join(usage)))
    # Both sides must parse: a changed layout of either fails here instead of comparing two
    # empty sets. Every usage line but the bare `mailpopbox CONFIG.json` names one command.
    assert "help" in listed, "no `.Cm help` in mailpopbox(8)'s SYNOPSIS: its layout changed?"
    assert "help" in in_help and len(in_help) == len(usage) - 1, \
        f"cannot tell the commands in `mailpopbox help` ({sorted(in_help)}) from:\n{text}"
    assert in_help == listed, f"help lists {sorted(in_help)}, mailpopbox(8) {sorted(listed)}"


# --- the example config loads -----------------------------------------------------------------

def runnable_example(directory, certs):
    """The example, its ports moved to free loopback ports and its paths into directory (a real
    certificate, and a DKIM key made by `mailpopbox dkim-keygen`); everything else as it is.
    Returns the config as a dict."""
    config = json.loads(EXAMPLE.read_text())
    config["ListenAddress"] = "127.0.0.1"
    for key in ("SMTPPort", "POP3Port", "SubmissionPort", "SubmissionTLSPort", "POP3STLSPort"):
        if config.get(key):
            config[key] = free_port()
    config["SpoolPath"] = str(directory / "spool")
    if os.geteuid() == 0:
        # As root the server would switch to "mailpopbox", which need not exist here, and
        # could not enter pytest's root-only tmp directories; "" means absent.
        config["User"] = config["Group"] = ""
    for key in ("OutboundRelayHost", "DNSResolver"):
        assert not config.get(key), f"the example should leave {key} at its default"
    for entry in config["Servers"]:
        domain = entry["Domain"]
        cert, key = certs.get(domain, certs["example.org"])
        entry["TLSCertPath"], entry["TLSKeyPath"] = str(cert), str(key)
        entry["MaildropPath"] = str(directory / f"maildrop-{domain}")
        entry["DKIMKeyPath"] = str(directory / f"dkim-{domain}.pem")
        made = run([BINARY, "dkim-keygen", domain, entry["DKIMSelector"], entry["DKIMKeyPath"]])
        assert made.returncode == 0, made.stderr
        assert f"{entry['DKIMSelector']}._domainkey.{domain}. IN TXT" in made.stdout
    return config


def test_example_config_passes_check(certs, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(runnable_example(tmp_path, certs), indent=2))
    result = run([BINARY, "check", path])
    assert result.returncode == 0 and result.stdout.strip() == "config OK", \
        f"exit {result.returncode}:\n{result.stdout}{result.stderr}"
    assert "unknown_key" not in result.stderr, result.stderr


def test_example_config_starts_a_server(make_server, certs, tmp_path):
    """The server starts with the example, reports no unknown key, and stops cleanly."""
    config = runnable_example(tmp_path, certs)
    entries = config.pop("Servers")
    server = make_server(config, servers=lambda _defaults: entries)
    log = server.log_text()
    assert "event=started" in log, log
    assert "unknown_key" not in log, log
    server.stop()
    assert server.process.returncode == 0, server.log_text()
