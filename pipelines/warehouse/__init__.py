"""The PostgreSQL warehouse: lake tables loaded from their Delta change feed, and the dbt project run on it."""
