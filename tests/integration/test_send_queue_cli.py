"""Operator commands for the outbound queue: `mailpopbox queue CONFIG.json` lists what waits
(id, sender, recipients with state and last error), `--flush` makes the running server retry
now."""

import subprocess

from conftest import queue_id
from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (OWNER, make_sink, outbound, outgoing_message,  # noqa: F401 (fixtures)
                  sending_server, submit, wait_until)

COMMAND_TIMEOUT = 30


def run_queue(server, *arguments):
    return subprocess.run([str(server.binary), "queue", str(server.config_path), *arguments],
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT)


def deferred_message(outbound, reply="451 4.3.0 greylisted, come back later"):
    """A message for bob@remote.test whose first attempt got `reply`, with the next attempt an
    hour away. Returns (server, sink, queue id from the 250)."""
    server, sink = outbound(overrides={"QueueRetryBaseSeconds": 3600})
    sink.reply_to_rcpt("bob@remote.test", reply, "250 2.1.5 ok")
    message, _ = outgoing_message("deferred")
    queue = queue_id(submit(server, ["bob@remote.test"], message))
    wait_until(lambda: sink.server_lines(reply[:3]), 10, "the remote was never tried")
    # The attempt is over once the queue shows its error (a flush during it has nothing to do).
    wait_until(lambda: reply[:3] in run_queue(server).stdout, 10,
               "the deferral never shows in `mailpopbox queue`")
    return server, sink, queue


def test_queue_lists_a_deferred_message_with_recipient_state_and_last_error(outbound):
    server, sink, queue = deferred_message(outbound)

    def listing():
        result = run_queue(server)
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
        return result.stdout if "greylisted" in result.stdout else None

    output = wait_until(listing, 10, "the last error never appears in `mailpopbox queue`")
    assert queue in output, f"queue id {queue} (from the 250) not listed:\n{output}"
    assert OWNER in output, output
    assert "bob@remote.test" in output, output
    assert "451" in output, output


def test_queue_flush_makes_the_server_retry_now(outbound):
    server, sink, _ = deferred_message(outbound)
    assert sink.delivered == []
    result = run_queue(server, "--flush")
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert result.stdout.strip() or result.stderr.strip(), "--flush printed no confirmation"
    [received] = sink.wait_for(1, timeout=10)
    assert received.accepted_recipients == ["bob@remote.test"]


def test_queue_forgets_a_delivered_message(outbound):
    server, sink = outbound()
    message, _ = outgoing_message("quick")
    queue = queue_id(submit(server, ["bob@remote.test"], message))
    sink.wait_for(1)

    def listing():
        result = run_queue(server)
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
        return None if queue in result.stdout else [result.stdout]  # an empty listing is fine

    [output] = wait_until(listing, 10, f"{queue} still listed after delivery")
    assert "bob@remote.test" not in output, output
