"""Helpers the tests share that are not fixtures (those live in conftest.py); on sys.path via pytest's
``pythonpath``."""
