"""The audit's time budget: a deadline, and calls that can be abandoned when it passes.

A target may hang (an endless loop, a deadlock). Python cannot stop a thread, so
:func:`run_before` runs the work in a daemon thread and stops *waiting* for it at the
deadline: the audit goes on (its verdicts say "inconclusive: time budget") and the thread,
which works on its own copy of the target, is left to finish or to die with the process.
Long loops of the audit itself also check the deadline between steps (:meth:`Deadline.check`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from gnpcheck.errors import GnpcheckError, InvalidArgumentError

__all__ = ["Deadline", "TimeBudgetError", "run_before"]

T = TypeVar("T")


class TimeBudgetError(GnpcheckError):
    """The audit's time budget ran out before the work finished."""


class Deadline:
    """A point in time, ``seconds`` from now (monotonic clock).

    Raises:
        InvalidArgumentError: ``seconds`` is not a positive, finite number.
    """

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, int | float) or not 0 < seconds < float("inf"):
            raise InvalidArgumentError(
                f"time_budget={seconds!r}, but it must be a positive, finite number of seconds"
            )
        self.seconds = float(seconds)
        self._end = time.monotonic() + self.seconds

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self._end - time.monotonic()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0

    def check(self, what: str = "the audit") -> None:
        """Raise :class:`TimeBudgetError` if the deadline has passed."""
        if self.expired():
            raise TimeBudgetError(f"time budget of {self.seconds:g} s used up during {what}")


def run_before(deadline: Deadline, work: Callable[[], T], what: str) -> T:
    """``work()``, run in a daemon thread that is abandoned if the deadline passes first.

    Exceptions of ``work`` are re-raised here. Autograd's grad mode is per thread: ``work``
    starts with gradients enabled, whatever the caller's mode.

    Raises:
        TimeBudgetError: the deadline passed before ``work`` returned (or before it started).
    """
    deadline.check(what)
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=target, name=f"gnpcheck-audit: {what}", daemon=True)
    thread.start()
    thread.join(max(deadline.remaining(), 0.0))
    if thread.is_alive():
        raise TimeBudgetError(
            f"time budget of {deadline.seconds:g} s used up during {what} (the call did not return)"
        )
    if failure:
        raise failure[0]
    return outcome[0]
