"""[H] Claiming each chunk of an answer before sending it (see telegram_core's DeliveryClaims):
the claim is renewed while a slow send runs, so it stays short (``hold_s``) and a consumer that
died mid-send blocks the answer only that long; a chunk another live delivery is sending is
waited for (it is then recorded, or its claim expires), never sent alongside."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from session_core import SessionKey, StorageError, get_logger, with_log_context
from telegram_core import ClaimVerdict

from ._errors import DeferredError

log = get_logger(__name__)

HOLD_S = 15.0
_CLAIM_ATTEMPTS = 4


class Claims(Protocol):
    """The verb of telegram_core.DeliveryClaims the consumer uses."""

    def claim(self, key: SessionKey, update_id: int, index: int, *, claimant: str) -> ClaimVerdict: ...

    def release(self, key: SessionKey, update_id: int, index: int, *, claimant: str) -> None: ...


class ChunkClaimer:
    """Claims for one delivery attempt of one update's answer; ``time_left()``: the seconds
    this attempt may still wait for a chunk another delivery holds (None: a claim's life)."""

    def __init__(
        self,
        claims: Claims,
        key: SessionKey,
        update_id: int,
        *,
        hold_s: float = HOLD_S,
        poll_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        self._claims = claims
        self._key = key
        self._update_id = update_id
        self._hold_s = hold_s
        self._poll_s = poll_s
        self._sleep = sleep
        self._clock = clock
        self._time_left = time_left
        self.claimant = uuid.uuid4().hex

    def claim(self, index: int) -> bool:
        """True: chunk ``index`` is ours to send now; False: it went out already. While
        another delivery holds it, wait for that one (up to a claim's life, then the claim
        has expired); DeferredError if it is still held after that, or when ``time_left``
        ends first (the invocation's end must not come while it waits: its record's outcome
        would go unsaid)."""
        give_up = self._clock() + self._hold_s + 2 * self._poll_s
        while True:
            verdict = self._claim_once(index)
            if verdict != "held":
                return verdict == "claimed"
            if self._clock() > give_up:
                raise DeferredError(
                    "delivery_in_progress", f"chunk {index} is being sent by another delivery"
                )
            if self._time_left is not None and self._time_left() <= self._poll_s:
                raise DeferredError(
                    "out_of_time", f"the time for delivery ran out while another delivery held chunk {index}"
                )
            log.info("chunk_held_by_another_delivery", chunk=index)
            self._sleep(self._poll_s)

    def _claim_once(self, index: int) -> ClaimVerdict:
        # A throttled claim is tried again here (like the record after the send): the
        # alternative, failing the record, would run its whole retry for one write.
        for attempt in range(1, _CLAIM_ATTEMPTS + 1):
            try:
                return self._claims.claim(self._key, self._update_id, index, claimant=self.claimant)
            except StorageError as exc:
                if attempt == _CLAIM_ATTEMPTS:
                    raise
                log.warning("chunk_claim_retry", chunk=index, attempt=attempt, error_code=exc.error_code)
                self._sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def sending(self, index: int) -> Iterator[None]:
        """Keep the claim on chunk ``index`` alive while the block sends it; give it up when
        the send fails (nothing went out: a retry may send it at once)."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self._hold_s / 3):
                try:
                    self._claims.claim(self._key, self._update_id, index, claimant=self.claimant)
                except Exception as exc:  # the send goes on; the claim may lapse
                    log.warning("chunk_claim_not_renewed", chunk=index, error=type(exc).__name__)

        keeper = threading.Thread(target=with_log_context(renew), name="chunk-claim", daemon=True)
        keeper.start()
        try:
            yield
        except Exception:
            done.set()
            keeper.join(timeout=5)
            try:
                self._claims.release(self._key, self._update_id, index, claimant=self.claimant)
            except Exception as exc:  # the claim lapses on its own
                log.warning("chunk_claim_not_released", chunk=index, error=type(exc).__name__)
            raise
        finally:
            done.set()
            keeper.join(timeout=5)
