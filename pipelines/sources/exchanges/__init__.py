"""Exchange access through ccxt, for the ``live`` and ``replay`` sources (ADR 0006).

* :mod:`.venues` - which exchanges are valid, their ccxt configuration, one :class:`~.venues.Venue`
  per exchange and run (a ccxt instance per thread, shared markets, the exchange's limiter);
* :mod:`.candles` / :mod:`.trades` - deterministic paging of one series' window, candle finality
  by the server's ``Date``, Kraken history rebuilt from trades;
* :mod:`.limits` - the shared limiter and the bans it remembers; :mod:`.capture` - capture and
  bit-identical replay of every raw response; :mod:`.errors` - one-line errors.

Both fetchers return raw bronze records (the catalog's columns), for the landing to validate.
"""
