"""PySpark jobs over the lake: ``features/`` (bronze -> silver indicators) and ``detectors/`` (manipulation
detectors -> gold), sharing the session (:mod:`.session`) and Delta IO (:mod:`.delta_io`)."""
