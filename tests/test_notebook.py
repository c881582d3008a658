"""Execute notebooks/quickstart.ipynb end to end with a tiny budget."""

from __future__ import annotations

import json
import pathlib
import sys

import ipykernel  # noqa: F401  (dev dependencies: a broken install must fail, not skip)
import nbclient
import nbformat
import pytest

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def _text_outputs(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output:
                parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    # The notebook reads its budget from these; the kernel inherits this process's environment.
    # The budget of tests/test_algos.py's and tests/test_sweep.py's PPO runs: the same programs,
    # compiled once per session.
    monkeypatch.setenv("JAXPG_NOTEBOOK_STEPS", "2048")
    monkeypatch.setenv("JAXPG_NOTEBOOK_SEEDS", "2")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    # Pin the "python3" kernel to the interpreter running the tests (this virtualenv), whatever
    # kernelspecs the user or system has installed: JUPYTER_PATH is searched before all others.
    kernel_dir = tmp_path / "jupyter" / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (jaxpg tests)",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))

    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Not part of the notebook: confirm which interpreter executed it.
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('KERNEL_PREFIX=' + sys.prefix)"))

    workdir = tmp_path / "run"
    workdir.mkdir()
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    text = _text_outputs(nb)
    assert f"KERNEL_PREFIX={sys.prefix}" in text
    assert "(3, 2," in text, text
    # Both figures were rendered.
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2
