"""Where raw market data comes from: the seeded simulator, the exchanges (through ccxt) and bulk archives."""

SOURCES = ("simulator", "live", "replay")  # of the ingest flow: the simulator, exchange APIs (captured), a replay
BULK = "bulk"  # Binance's public data archives, for backfills (sources/archives.py)
