"""dbt's ``var()`` for sqlfluff's Jinja templater (``.sqlfluff``): the project's vars from
``dbt_project.yml`` and the ``sentinance`` var from the catalog and the default settings, the
values dbt itself renders with, so the linted SQL is the SQL dbt runs."""

from pathlib import Path
from typing import Any

import yaml

from sentinance.catalog import dbt_vars
from sentinance.settings import Settings

_VARS = {
    **yaml.safe_load((Path(__file__).parents[1] / "dbt_project.yml").read_text())["vars"],
    "sentinance": dbt_vars(Settings()),
}


def var(name: str, default: Any = None) -> Any:
    return _VARS.get(name, default)
