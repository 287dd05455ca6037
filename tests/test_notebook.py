"""The quickstart notebook runs top to bottom, so it never rots."""

import pathlib

import pytest

pytestmark = pytest.mark.slow  # seconds to a minute each (see pyproject.toml)

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK = (pathlib.Path(__file__).resolve().parent.parent / "notebooks"
            / "quickstart.ipynb")


def test_saved_notebook_carries_its_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  code = [cell for cell in nb.cells if cell.cell_type == "code"]
  assert code and all(cell.execution_count for cell in code)
  assert any(output.get("data", {}).get("image/jpeg")
             or output.get("data", {}).get("image/png")
             for cell in code for output in cell.outputs)


def test_quickstart_executes(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(
      nb, timeout=300, kernel_name="python3",
      resources={"metadata": {"path": str(tmp_path)}})
  client.execute()  # raises CellExecutionError on any failing cell
  text = "".join(output.get("text", "") for cell in nb.cells
                 if cell.cell_type == "code" for output in cell.outputs)
  assert "same as segs_paste: True" in text
  assert "same as the three calls: True" in text  # detail_segs
  assert "alpha 128.00" in text  # gradient descent recovered the opacity
