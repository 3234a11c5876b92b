"""Where raw market data comes from: the seeded simulator and the exchange connectors."""

SOURCES = ("simulator", "live", "replay")  # the simulator, exchange APIs (captured), or a replay of the captures
