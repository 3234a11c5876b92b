"""Request pacing and bans per exchange, shared by every series and task of a run.

ccxt's sync client only spaces the requests of one instance and takes no lock, and it never reads
a ``Retry-After`` or a used-weight header. One :class:`Limiter` per exchange replaces the
``throttle`` of every ccxt instance of that exchange (one instance per thread):

* **spacing** - ccxt's own ``rateLimit`` per unit of request cost, as a queue of reservations:
  requests leave evenly spaced, never as a burst from a bucket that starts full;
* **weight budget** (Binance) - never more than ``budget`` request weight in any rolling
  ``window`` seconds; after every response the server's count (``X-MBX-USED-WEIGHT-1M``) raises
  ours when it is higher (other processes on the same IP spend the same budget);
* **ban** - once an exchange answers 418, 429 or a throttle/lockout body, every later request of
  that exchange fails at once (:class:`ExchangeBanned`) until the ban ends: ``Retry-After`` when
  the response carries one, else :data:`DEFAULT_BAN_SECONDS`. Live runs keep bans in a
  :class:`BanBook` in the state dir, so a later run inside the window sends nothing either.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from sentinance.pipelines.sources.exchanges.errors import ExchangeBanned

DEFAULT_BAN_SECONDS = 300.0  # a throttle without Retry-After (Kraken, OKX, Bybit bodies): wait five minutes
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Ban:
    exchange: str
    until: float  # epoch seconds
    reason: str

    @property
    def until_utc(self) -> str:
        return datetime.fromtimestamp(self.until, UTC).isoformat(timespec="seconds")


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None


class BanBook:
    """Bans of live runs, one small JSON file in the state dir (expired ones are dropped)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path, self.clock = path, clock
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Ban]:
        if not self.path.exists():
            return {}
        now = self.clock()
        bans = {name: Ban(**row) for name, row in json.loads(self.path.read_text()).items()}
        return {name: ban for name, ban in bans.items() if ban.until > now}

    def active(self, exchange: str) -> Ban | None:
        with self._lock:
            return self._read().get(exchange)

    def all(self) -> dict[str, Ban]:
        with self._lock:
            return self._read()

    def record(self, ban: Ban) -> None:
        with self._lock:
            bans = self._read()
            if ban.exchange in bans and bans[ban.exchange].until >= ban.until:
                return
            bans[ban.exchange] = ban
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".tmp")
            partial.write_text(json.dumps({name: asdict(b) for name, b in sorted(bans.items())}, indent=1))
            os.replace(partial, self.path)


class Limiter:
    """Pacing, weight budget and ban of one exchange (see the module docstring); thread-safe.

    ``spacing`` is seconds per unit of ccxt request cost; ``weight_per_cost`` converts ccxt's cost
    into the exchange's request weight for ``budget`` (per rolling ``window`` seconds); ``header``
    names the response header carrying the server's count of that weight. ``pace=False`` (replay)
    keeps the accounting and bans but never sleeps.
    """

    def __init__(
        self,
        exchange: str,
        *,
        spacing: float,
        budget: float | None = None,
        weight_per_cost: float = 1.0,
        header: str | None = None,
        window: float = WINDOW_SECONDS,
        pace: bool = True,
        book: BanBook | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.exchange, self.spacing, self.budget, self.weight_per_cost = exchange, spacing, budget, weight_per_cost
        self.header, self.window, self.pace, self.book = header, window, pace, book
        self.clock, self.sleep, self.wall = clock, sleep, wall
        self.sent: list[tuple[float, float]] = []  # (time, weight) of the rolling window, sorted by time
        self.ban: Ban | None = book.active(exchange) if book else None
        self.requests = 0
        self.waited = 0.0
        self._next = -math.inf
        self._lock = threading.Lock()

    # -- before a request (ccxt's Exchange.throttle) --------------------------------------------

    def throttle(self, cost: float | None = None) -> None:
        """Wait for this request's slot; raise :class:`ExchangeBanned` while the exchange is banned."""
        cost = 1.0 if cost is None else float(cost)
        with self._lock:
            self.check()
            now = self.clock()
            start = max(now, self._next)
            if self.budget is not None:
                start = self._budget_slot(start, cost * self.weight_per_cost)
            self._next = start + cost * self.spacing
            self.requests += 1
        delay = start - now
        if delay > 0 and self.pace:
            self.waited += delay
            self.sleep(delay)

    def _budget_slot(self, start: float, weight: float) -> float:
        """The first time from ``start`` at which ``weight`` fits the rolling budget; reserves it."""
        self._forget(start)
        used = sum(w for _, w in self.sent)
        spent = iter(list(self.sent))
        while used + weight > self.budget and used > 0:  # type: ignore[operator]
            oldest_time, oldest_weight = next(spent)
            start = max(start, oldest_time + self.window)
            used -= oldest_weight
        bisect.insort(self.sent, (start, weight))
        return start

    def _forget(self, now: float) -> None:
        """Drop what left the rolling window ending at ``now``."""
        keep = bisect.bisect_right(self.sent, (now - self.window, math.inf))
        del self.sent[:keep]

    def check(self, what: str = "request") -> None:
        if self.ban is not None and self.wall() < self.ban.until:
            raise ExchangeBanned(self.exchange, what, self.ban.until, self.ban.reason)

    # -- after a response ----------------------------------------------------------------------

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Raise our count of used weight to the server's (the header), if it says more."""
        if self.budget is None or self.header is None or headers.get(self.header) is None:
            return
        try:
            server = float(headers[self.header])
        except ValueError:
            return
        with self._lock:
            now = self.clock()
            self._forget(now)
            ours = sum(w for t, w in self.sent if t <= now)
            if server > ours:
                bisect.insort(self.sent, (now, server - ours))

    def stop(self, headers: Mapping[str, str], reason: str) -> Ban:
        """The exchange said stop: ban it until ``Retry-After`` (or the default) from now."""
        now = self.wall()
        wait = retry_after(headers, now)
        ban = Ban(self.exchange, now + (DEFAULT_BAN_SECONDS if wait is None else wait), reason)
        with self._lock:
            if self.ban is None or self.ban.until < ban.until:
                self.ban = ban
        if self.book is not None:
            self.book.record(ban)
        return self.ban
