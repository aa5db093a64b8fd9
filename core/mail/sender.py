"""The background sender: one per server process, started and stopped by the app's lifespan.

It wakes when this process commits a message, and polls for messages other instances
wrote (or whose retry is due). Each pass claims a bounded batch, delivers it over one
connection, and records the outcome; a database or mail server hiccup only delays things.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence

from core import metrics, request_id
from core.db import Database, now
from core.errors import Unavailable
from core.mail import outbox
from core.mail.delivery import Delivery, PermanentFailure, Transport
from core.mail.message import Outgoing, build

logger = logging.getLogger("accounts.mail")

# Another instance's message is picked up within this many seconds (plus a send).
POLL_SECONDS = 3.0
BATCH = 20
# A claimed message is left alone by every other instance this long; if this process dies
# mid-send it is sent again after that. Longer than a batch may take (see PASS_BUDGET).
LEASE_SECONDS = 120.0
PASS_BUDGET = 60.0
# How long stopping waits for a pass in progress to notice it was cancelled.
STOP_SECONDS = 5.0
# Growing delays between attempts; the first retry comes within 60 s, and a message is
# given up on after MAX_AGE.
RETRY_DELAYS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0)
MAX_AGE = 24 * 3600.0
PURGE_EVERY = 600.0
# After an unexpected error (the database away), wait before the next pass.
ERROR_PAUSE = 5.0


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones, with a little jitter so
    that many messages (or instances) do not retry in lockstep."""
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    return base * random.uniform(0.8, 1.0)  # noqa: S311  (spreading retries, not a secret)


class Sender:
    def __init__(
        self,
        database: Database,
        box: outbox.Outbox,
        delivery: Delivery,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.database = database
        self.outbox = box
        self.delivery = delivery
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="mail-sender")

    async def stop(self) -> None:
        """Stop at once: a message being handed over is left claimed, and is sent again
        when its lease runs out (at least once)."""
        if self._task is None:
            return
        self._task.cancel()
        # Not `await self._task`: a pass stuck where cancellation cannot reach it (a driver
        # call that swallows it) must not hold the process's shutdown forever.
        done, _ = await asyncio.wait({self._task}, timeout=STOP_SECONDS)
        if not done:
            logger.warning("mail sender: still busy %s s after being stopped; left", STOP_SECONDS)
        self._task = None

    async def run(self) -> None:
        while True:
            self.outbox.wakeup.clear()
            try:
                handled = await self.run_once()
                metrics.outbox(**await outbox.counts(self.database))
            except Unavailable:
                # core/db.py logged why; a traceback would add nothing but noise.
                logger.warning("mail sender pass skipped; retrying in %.0f s", ERROR_PAUSE)
                await asyncio.sleep(ERROR_PAUSE)
                continue
            except Exception:
                logger.exception("mail sender pass failed; retrying in %.0f s", ERROR_PAUSE)
                await asyncio.sleep(ERROR_PAUSE)
                continue
            if handled >= BATCH:
                continue  # more may be due right now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self.outbox.wakeup.wait()

    async def run_once(self) -> int:
        """One pass: deliver what is due now. Returns how many messages it handled."""
        at = now()
        if at - self._last_purge > PURGE_EVERY:
            await outbox.purge(self.database, at=at)
            self._last_purge = at
        if not await outbox.any_due(self.database, at=at):
            return 0
        batch = await outbox.claim(self.database, at=at, lease=LEASE_SECONDS, limit=BATCH)
        if batch:
            await self._deliver(batch)
        return len(batch)

    async def _deliver(self, batch: Sequence[outbox.Claimed]) -> None:
        sent: list[int] = []
        refused: list[int] = []
        # Stand-ins (no recipient) are settled like the rest, without being handed over.
        void = [claimed.id for claimed in batch if not claimed.recipient]
        pending = [claimed for claimed in batch if claimed.recipient]
        in_flight: int | None = None
        error: Exception | None = None
        started = time.monotonic()
        try:
            if pending:
                async with self.delivery.open() as transport:
                    while pending and time.monotonic() - started < PASS_BUDGET:
                        claimed = pending[0]
                        in_flight = claimed.id
                        # Logged under the id of the request that caused the message.
                        with request_id.bound(claimed.request_id):
                            if await self._send_one(transport, claimed):
                                sent.append(claimed.id)
                            else:
                                refused.append(claimed.id)
                        in_flight = None
                        pending.pop(0)
        except Exception as exc:
            error = exc
        except asyncio.CancelledError:
            # Stopping: record what is known. The message in flight may or may not have
            # been handed over, so it keeps its lease (sent again later: at least once);
            # the untouched rest is due again at once, for any instance.
            at = now()
            await outbox.mark_sent(self.database, sent, void=void, at=at)
            await outbox.mark_failed(self.database, refused)
            await outbox.retry_at(self.database, {c.id: at for c in pending if c.id != in_flight})
            raise
        at = now()
        await outbox.mark_sent(self.database, sent, void=void, at=at)
        await outbox.mark_failed(self.database, refused)
        if pending:
            await self._reschedule(pending, error, at)

    async def _reschedule(
        self, pending: Sequence[outbox.Claimed], error: BaseException | None, at: float
    ) -> None:
        retries: dict[int, float] = {}
        expired: list[int] = []
        for claimed in pending:
            if error is None:
                retries[claimed.id] = at  # out of time for this pass, not failed: due now
                continue
            deadline = claimed.created_at + MAX_AGE
            if at >= deadline:
                expired.append(claimed.id)
            else:
                retries[claimed.id] = min(at + retry_delay(claimed.attempts), deadline)
        if error is not None:
            logger.warning(
                "mail delivery failed (%s: %s); %d message(s) will be retried",
                type(error).__name__,
                error,
                len(retries),
            )
        for claimed in pending:
            if claimed.id in expired:
                with request_id.bound(claimed.request_id):
                    logger.error("mail %s given up after %.0f hours", claimed.id, MAX_AGE / 3600)
        await outbox.retry_at(self.database, retries)
        await outbox.mark_failed(self.database, expired)

    async def _send_one(self, transport: Transport, claimed: outbox.Claimed) -> bool:
        """Build and hand over one message: True once sent, False if it never can be.

        A message that cannot be built (a body that does not open, an address that is not
        one) or that the server refuses for good fails alone; the batch goes on. Any other
        error is the connection's: it propagates, and the rest of the batch waits too.
        """
        try:
            outgoing = self._message(claimed)
        except Exception as exc:
            logger.error("mail %s cannot be built (%s); marked failed", claimed.id, _reason(exc))
            return False
        try:
            await transport.send(outgoing)
        except PermanentFailure as exc:
            logger.error("mail %s refused for good: %s", claimed.id, exc)
            return False
        return True

    def _message(self, claimed: outbox.Claimed) -> Outgoing:
        return build(
            sender=self.outbox.sender,
            recipient=claimed.recipient,
            name=claimed.display_name,
            subject=claimed.subject,
            body=self.outbox.keys.unseal_mail(claimed.body, message_id=claimed.message_id),
            message_id=claimed.message_id,
            date=claimed.created_at,
        )


def _reason(exc: Exception) -> str:
    # The kind of error only: its text may quote the address (email-validator's does).
    return type(exc).__name__
