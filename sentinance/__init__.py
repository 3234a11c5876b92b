"""Sentinance: a batch-first crypto market lakehouse.

Importing the package (or any of its modules) configures nothing: call
:func:`sentinance.settings.configure` once before running a stage (the CLI, the flows, the
notebooks and the tests do).
"""

__version__ = "0.1.0"
