"""Ingestion and orchestration: sources, bronze landing, warehouse load and the Prefect flows."""
