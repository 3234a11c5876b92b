"""Fault injection is aimed by one setting at one named point, and does nothing anywhere else."""

from __future__ import annotations

import pytest

from sentinance import faults
from sentinance.settings import FAULT_POINTS, get_settings


def test_a_fault_is_armed_at_its_point_only(tmp_path) -> None:
    assert faults.armed(get_settings(home=tmp_path), "dbt-build") is None
    aimed = get_settings(home=tmp_path, fault="dbt-build")
    assert [p for p in FAULT_POINTS if faults.armed(aimed, p)] == ["dbt-build"]
    assert faults.armed(aimed, "dbt-build") == "group"
    assert faults.armed(get_settings(home=tmp_path, fault="postgres@warehouse-copy"), "warehouse-copy") == "postgres"
    faults.reach(aimed, "candles-merged")  # not aimed there: nothing happens


def test_an_unknown_point_in_the_code_is_a_bug(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown fault point 'dbt'"):
        faults.armed(get_settings(home=tmp_path), "dbt")
