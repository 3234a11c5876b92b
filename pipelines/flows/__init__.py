"""The Prefect flows: ``ingest``, the stage flows, ``lakehouse`` and their deployments, composed of the tasks of
:mod:`.tasks`."""
