"""Great Expectations suites and checkpoints for every landing, with quarantine."""
