"""What a failed exchange request says, in one line."""

from __future__ import annotations

from datetime import UTC, datetime

from sentinance.errors import SentinanceError


class ExchangeError(SentinanceError):
    """A request of one series failed: names the exchange, the series and the problem.

    ``transient`` errors (a dropped connection, a 5xx) may pass on their own: the fetch task retries
    them (:mod:`sentinance.pipelines.flows.retry`). Nothing else is retried.
    """

    def __init__(self, exchange: str, what: str, problem: str, *, transient: bool = False) -> None:
        self.exchange, self.what, self.problem, self.transient = exchange, what, problem, transient
        super().__init__(f"{exchange} {what}: {problem}")


class ExchangeBanned(ExchangeError):
    """The exchange told us to stop (418, 429, a throttle or lockout body) until ``until`` (epoch s).

    Never retried: every request of that exchange fails at once until then, in this run and - the
    ban is kept in the state dir - in later ones.
    """

    def __init__(self, exchange: str, what: str, until: float, reason: str) -> None:
        self.until, self.reason = until, reason
        stamp = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
        super().__init__(exchange, what, f"banned until {stamp} ({reason})")
