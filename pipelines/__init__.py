"""Ingestion and orchestration: ``sources/`` (simulator, exchanges), ``landing/`` (bronze),
``warehouse/`` (Delta -> PostgreSQL loader, the dbt runner) and ``flows/`` (the Prefect flows)."""
