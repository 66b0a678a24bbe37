"""SIGHUP re-reads the config and the certificates (issue 5): certificates renewed by an ACME
client are served to new connections without a restart, connections already open keep what
they started with, and a bad new config is logged while the old one stays in force."""
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time

from conftest import insecure_client_context


def make_cert(directory, name, subject):
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={subject}",
         "-addext", "subjectAltName=DNS:mx.example.org,DNS:example.org"],
        check=True, capture_output=True, timeout=60)
    return cert, key


def served_certificate(port):
    """The DER certificate the POP3 TLS port presents for mx.example.org."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with insecure_client_context().wrap_socket(raw, server_hostname="mx.example.org") as tls:
            return tls.getpeercert(binary_form=True)


def der_of(cert_path):
    return ssl.PEM_cert_to_DER_cert(cert_path.read_text())


def wait_for_log(server, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log:\n{server.log_text()[-3000:]}")


def renewable_server(make_server, tmp_path):
    """A server whose example.org certificate lives at fixed paths an 'ACME client' rewrites."""
    live = tmp_path / "live"
    live.mkdir()
    cert, key = make_cert(tmp_path, "first", "first.example.org")
    shutil.copy(cert, live / "cert.pem")
    shutil.copy(key, live / "key.pem")

    def servers(entries):
        for entry in entries:
            if entry["Domain"] == "example.org":
                entry["TLSCertPath"] = str(live / "cert.pem")
                entry["TLSKeyPath"] = str(live / "key.pem")
        return entries
    return make_server(servers=servers), live, cert


def test_sighup_serves_a_renewed_certificate_to_new_connections(make_server, tmp_path):
    server, live, first = renewable_server(make_server, tmp_path)
    assert served_certificate(server.pop3_port) == der_of(first)
    # An open connection started under the first certificate survives the reload.
    held = socket.create_connection(("127.0.0.1", server.smtp_port), timeout=10)
    assert held.recv(512).startswith(b"220 ")

    second, second_key = make_cert(tmp_path, "second", "second.example.org")
    shutil.copy(second_key, live / "key.pem")
    shutil.copy(second, live / "cert.pem")
    server.process.send_signal(signal.SIGHUP)
    wait_for_log(server, "event=reloaded")

    assert served_certificate(server.pop3_port) == der_of(second)
    held.sendall(b"NOOP\r\n")
    assert held.recv(512).startswith(b"250 ")
    held.close()
    assert server.alive()


def test_sighup_with_a_bad_config_keeps_the_old_one(make_server, tmp_path):
    server, live, first = renewable_server(make_server, tmp_path)
    good = server.config_path.read_text()
    server.config_path.write_text(good.replace('"Hostname"', '"Hostname": 5, "Ignored"', 1))
    server.process.send_signal(signal.SIGHUP)
    wait_for_log(server, "event=reload_failed")
    assert served_certificate(server.pop3_port) == der_of(first)
    with server.connect() as client:
        assert client.ehlo().code == 250


def test_sighup_with_a_key_that_does_not_match_keeps_the_old_certificate(make_server, tmp_path):
    server, live, first = renewable_server(make_server, tmp_path)
    _, other_key = make_cert(tmp_path, "other", "other.example.org")
    shutil.copy(other_key, live / "key.pem")  # a renewal caught half way: new key, old cert
    server.process.send_signal(signal.SIGHUP)
    wait_for_log(server, "event=reload_failed")
    assert served_certificate(server.pop3_port) == der_of(first)


def test_sighup_applies_new_blocked_addresses(make_server, tmp_path):
    server = make_server()
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<newly-blocked@example.org>").code == 250
    config = json.loads(server.config_path.read_text())
    config["Servers"][0]["BlockedAddresses"].append("newly-blocked@example.org")
    server.config_path.write_text(json.dumps(config))
    server.process.send_signal(signal.SIGHUP)
    wait_for_log(server, "event=reloaded")
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<newly-blocked@example.org>").code == 553
