"""The notebooks: committed without outputs, and each runs top to bottom on the session's lakehouse.

The kernel is the current interpreter's (ipykernel's native ``python3`` spec), and it inherits
``SENTINANCE_HOME``, so the notebooks read the state of the one ``lakehouse`` run of the session.
Executed copies are saved under test-artifacts/notebooks/ for a look at the figures.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
EXECUTED = REPO / "test-artifacts" / "notebooks"
FIGURES = {"01_market_eda": 5, "02_features_and_anomalies": 3, "03_model_report": 5}
CELL_SECONDS = 300


def _outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def test_the_notebooks_are_committed_without_outputs() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(FIGURES)
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert code and not _outputs(nb), f"{path.name} has outputs"
        assert all(cell.execution_count is None for cell in code), f"{path.name} has execution counts"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_top_to_bottom(name: str, lakehouse_run: dict) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_SECONDS, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    try:
        client.execute()  # raises CellExecutionError naming the failing cell
    finally:
        EXECUTED.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, EXECUTED / f"{name}.ipynb")
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert figures >= FIGURES[name], f"{name} drew {figures} figures"
