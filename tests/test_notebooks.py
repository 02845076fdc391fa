"""The notebooks run top to bottom (as committed: without outputs) on CPU, offline."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb")))
def test_notebook_runs(name, tfds_dir, monkeypatch):
  with open(os.path.join(NOTEBOOKS, name)) as f:
    notebook = nbformat.read(f, as_version=4)
  assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit without outputs"
  monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)  # The embedded dataset, already prepared; nothing downloaded.
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}).execute()
