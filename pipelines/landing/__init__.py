"""Landing raw records into the bronze Delta tables through their Great Expectations checkpoints."""
