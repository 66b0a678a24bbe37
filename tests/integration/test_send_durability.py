"""The outbound queue is durable: a message is on disk before the 250, survives SIGKILL, and
each recipient is delivered exactly once across crashes and restarts."""

import signal
import time

from conftest import queue_id
from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (make_sink, outbound, outgoing_message, sending_server,  # noqa: F401 (fixtures)
                  submit, wait_until, wait_until_dequeued)
from test_smtp_nonblocking import preloaded_shim

RECIPIENTS = ["bob@remote.test", "erin@remote.test"]


def assert_delivered_once(server, sink, queue, message_id):
    """Once the server is done with the message (it left the queue), it arrived once."""
    wait_until_dequeued(server, queue)
    copies = sink.with_message_id(message_id)
    assert len(copies) == 1, f"{len(copies)} deliveries of {message_id}:\n{sink.dialogue()}"
    assert sorted(copies[0].accepted_recipients) == RECIPIENTS


def test_message_queued_with_the_remote_down_survives_sigkill_and_is_delivered_once(outbound):
    server, sink = outbound(start_sink=False)
    message, message_id = outgoing_message("survives sigkill")
    queue = queue_id(submit(server, RECIPIENTS, message))
    time.sleep(1.2)  # the first attempt(s) fail against the dead host
    server.kill(signal.SIGKILL)
    server.start()
    sink.start()
    sink.wait_for(1, timeout=30)
    assert_delivered_once(server, sink, queue, message_id)


def test_message_accepted_just_before_sigkill_is_delivered_after_restart(outbound):
    server, sink = outbound(start_sink=False)
    message, message_id = outgoing_message("killed right after the 250")
    queue = queue_id(submit(server, RECIPIENTS, message))
    server.kill(signal.SIGKILL)
    sink.start()
    server.start()
    sink.wait_for(1, timeout=30)
    assert_delivered_once(server, sink, queue, message_id)


def test_delivered_message_is_not_sent_again_after_sigkill(outbound):
    server, sink = outbound()
    message, message_id = outgoing_message("delivered, then the server dies")
    queue = queue_id(submit(server, RECIPIENTS, message))
    sink.wait_for(1)
    wait_until_dequeued(server, queue)  # the remote's 250 is recorded
    server.kill(signal.SIGKILL)
    server.start()
    time.sleep(1.5)  # a server that lost the record would send again now (retries 1 s apart)
    assert_delivered_once(server, sink, queue, message_id)


def test_message_queued_at_graceful_stop_is_delivered_after_start(outbound):
    server, sink = outbound(start_sink=False)
    message, message_id = outgoing_message("survives a restart")
    queue = queue_id(submit(server, RECIPIENTS, message))
    server.stop()
    sink.start()
    server.start()
    sink.wait_for(1, timeout=30)
    assert_delivered_once(server, sink, queue, message_id)


def test_no_delivery_starts_while_the_spool_cannot_record_its_outcome(outbound, tmp_path,
                                                                      monkeypatch):
    """A spool on a full disk: the submission's envelope is written, then every later save
    fails with ENOSPC. A delivery whose outcome cannot be recorded would be sent again after a
    crash, so none is started (record, then deliver); once the disk has room, the message goes
    out once."""
    with preloaded_shim(tmp_path, monkeypatch, FAULT_OP="fsync", FAULT_ERRNO="ENOSPC",
                        FAULT_PATH="*/spool1/tmp/*.env.*", FAULT_NTH=2, FAULT_COUNT=0):
        server, sink = outbound()
    message, message_id = outgoing_message("the spool filled up after queueing")
    queue = queue_id(submit(server, RECIPIENTS, message))
    wait_until(lambda: "event=attempt_deferred" in server.log_text(), 20,
               "no attempt was deferred for the unwritable spool")
    assert sink.client_lines("MAIL") == [], "a delivery started that could not be recorded"
    server.kill(signal.SIGKILL)
    server.start()  # without the shim: the disk has room again
    sink.wait_for(1, timeout=30)
    assert_delivered_once(server, sink, queue, message_id)
