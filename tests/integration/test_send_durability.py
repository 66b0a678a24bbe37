"""The outbound queue is durable: a message is on disk before the 250, survives SIGKILL, and
each recipient is delivered exactly once across crashes and restarts."""

import signal
import time

from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (make_sink, outbound, outgoing_message, sending_server,  # noqa: F401 (fixtures)
                  submit)

RECIPIENTS = ["bob@remote.test", "erin@remote.test"]
SETTLE = 3.0  # seconds of retry periods (QueueRetryBaseSeconds 1) in which nothing more may come


def assert_delivered_once(sink, message_id):
    time.sleep(SETTLE)
    copies = sink.with_message_id(message_id)
    assert len(copies) == 1, f"{len(copies)} deliveries of {message_id}:\n{sink.dialogue()}"
    assert sorted(copies[0].accepted_recipients) == RECIPIENTS


def test_message_queued_with_the_remote_down_survives_sigkill_and_is_delivered_once(outbound):
    server, sink = outbound(start_sink=False)
    message, message_id = outgoing_message("survives sigkill")
    submit(server, RECIPIENTS, message)
    time.sleep(1.5)  # the first attempt(s) fail against the dead host
    server.kill(signal.SIGKILL)
    server.start()
    sink.start()
    sink.wait_for(1, timeout=30)
    assert_delivered_once(sink, message_id)


def test_message_accepted_just_before_sigkill_is_delivered_after_restart(outbound):
    server, sink = outbound(start_sink=False)
    message, message_id = outgoing_message("killed right after the 250")
    submit(server, RECIPIENTS, message)
    server.kill(signal.SIGKILL)
    sink.start()
    server.start()
    sink.wait_for(1, timeout=30)
    assert_delivered_once(sink, message_id)


def test_delivered_message_is_not_sent_again_after_sigkill(outbound):
    server, sink = outbound()
    message, message_id = outgoing_message("delivered, then the server dies")
    submit(server, RECIPIENTS, message)
    sink.wait_for(1)
    time.sleep(0.5)  # the remote's 250 is recorded
    server.kill(signal.SIGKILL)
    server.start()
    assert_delivered_once(sink, message_id)


def test_message_queued_at_graceful_stop_is_delivered_after_start(outbound):
    server, sink = outbound(start_sink=False)
    message, message_id = outgoing_message("survives a restart")
    submit(server, RECIPIENTS, message)
    server.stop()
    sink.start()
    server.start()
    sink.wait_for(1, timeout=30)
    assert_delivered_once(sink, message_id)
