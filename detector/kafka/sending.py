"""The worker's output: alerts, dead letters and counterexamples, sent with a timeout and retried.

:class:`Sending` is the part of :class:`detector.kafka.worker.Worker` that produces what a fold or an
evaluation returns (:meth:`Sending._send`). A message that cannot be sent (broker away, no
acknowledgement within :data:`SEND_TIMEOUT`) waits in order in ``unsent`` and is retried every
:data:`SEND_RETRY` seconds; a checkpoint does not complete while anything waits, so no offset of an
unsent dead letter is committed. At most :data:`UNSENT_MAX` wait (the oldest are dropped, counted).
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from detector.kafka.sidecar import Outbox

__all__ = ["Sending", "SEND_TIMEOUT", "SEND_RETRY", "UNSENT_MAX"]

log = logging.getLogger("skewwatch.worker")
# seconds a produce may wait for metadata, buffer space or its acknowledgement (Faust's default is
# 1,200): the worker lock is held around sends, so a send stuck on a broker that lost a topic would
# otherwise freeze folds, checkpoints and a rebalance's revocation for twenty minutes
SEND_TIMEOUT = 30.0
SEND_RETRY = 5.0  # seconds before messages that could not be sent are tried again
UNSENT_MAX = 100_000  # messages kept for sending while the broker is away; beyond, the oldest are dropped (counted)


class Sending:
    """Alerts, dead letters and counterexamples out, with retry (mixed into the worker; see the module)."""

    async def _send(self, out: Outbox) -> None:
        """Send alerts, dead letters and counterexamples (caller holds the lock).

        What cannot be sent (broker away, a send not acknowledged within ``SEND_TIMEOUT``) waits in
        ``unsent``, in order, for the next call; a checkpoint does not complete while anything waits
        there, so the offsets of dead-lettered messages are never committed before their dead letters
        are out.
        """
        t = self._topics
        queue = self.unsent
        for a in out.alerts:
            if self.published and (a.alert_id, a.state) in self.published:
                self.alerts_suppressed += 1  # re-raised while re-evaluating what followed the checkpoint
                log.info("not re-sending alert %s %s", a.state, a.alert_id)
                continue
            d = a.to_dict()
            self.alert_log.append(d)
            del self.alert_log[:-500]
            queue.append(("alerts", a.key.encode(), orjson.dumps(d), None, d))
        for m, e in out.dlq:
            headers = [("source-topic", m.topic.encode()), ("source-partition", str(m.partition).encode()),
                       ("source-offset", str(m.offset).encode()), ("reason", e.reason.encode()),
                       ("detail", e.detail[:500].encode())]
            queue.append(("dlq", m.key, m.value if m.value is not None else e.raw, headers, None))
        if out.dlq:
            log.warning("dead-lettered %d messages", len(out.dlq), extra={"reasons": sorted({e.reason for _, e in out.dlq})})
        for rec in out.counterexamples:  # worst false positives / negatives of a matured cohort
            queue.append(("counterexamples", f"{rec['model']}/{rec['prediction_id']}".encode(), orjson.dumps(rec), None, None))
        if len(queue) > UNSENT_MAX:  # the broker has been away long: the oldest go, loudly (counted)
            drop = len(queue) - UNSENT_MAX
            self.send_dropped += drop
            log.error("dropped the %d oldest unsent alert/dead-letter messages (more than %d waiting)", drop, UNSENT_MAX)
            del queue[:drop]
        if not queue or time.monotonic() < self.send_retry_at:
            return  # a send failed moments ago: wait for the retry time, do not block the lock on every call
        sent = 0
        try:
            for topic, key, value, headers, alert in queue:
                await asyncio.wait_for(t[topic].send(key=key, value=value, headers=headers), SEND_TIMEOUT)
                sent += 1
                if alert is not None:
                    log.info("alert %s %s", alert["state"], alert["summary"], extra={
                        "kind": alert["kind"], "feature": alert["feature"], "slice": alert["slice"],
                        "alert_id": alert["alert_id"]})
        except Exception as exc:  # noqa: BLE001 - broker trouble: keep what is left, in order, for the next call
            self.send_failures += 1
            self.send_retry_at = time.monotonic() + SEND_RETRY
            log.warning("could not send %d alert/dead-letter/counterexample messages (%s: %s); retrying with the next "
                        "send or checkpoint", len(queue) - sent, type(exc).__name__, str(exc) or "no answer in time")
        finally:
            del queue[:sent]
