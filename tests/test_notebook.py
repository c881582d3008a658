"""Execute the notebooks end to end with tiny budgets."""

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


def _execute(path: pathlib.Path, tmp_path, monkeypatch):
    """Run the notebook at ``path`` in a kernel of this interpreter; return it with outputs."""
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

    nb = nbformat.read(path, as_version=4)
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
    assert f"KERNEL_PREFIX={sys.prefix}" in _text_outputs(nb)
    return nb


def _images(nb) -> list:
    return [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    # The notebook reads its budget from these; the kernel inherits this process's environment.
    # The budget of tests/test_algos.py's and tests/test_sweep.py's PPO runs: the same programs,
    # compiled once per session.
    monkeypatch.setenv("JAXPG_NOTEBOOK_STEPS", "2048")
    monkeypatch.setenv("JAXPG_NOTEBOOK_SEEDS", "2")
    nb = _execute(NOTEBOOK, tmp_path, monkeypatch)
    text = _text_outputs(nb)
    assert "(3, 2," in text, text
    assert len(_images(nb)) == 2  # both figures were rendered


@pytest.mark.slow
def test_sequence_loss_notebook_learns(tmp_path, monkeypatch):
    """The embedding example: a jaxpg recipe as the loss of a plain flax + optax training step.

    Criterion from 12 keys at 150 steps (this machine): the mean reward of the last 10 steps was
    0.43-0.49; a random policy scores 0.1 (so a zero learning rate fails); the bar is 0.25."""
    monkeypatch.setenv("JAXPG_NOTEBOOK_STEPS", "150")
    nb = _execute(NOTEBOOK.parent / "sequence_loss.ipynb", tmp_path, monkeypatch)
    text = _text_outputs(nb)
    final = float(text.split("FINAL_REWARD=")[1].split()[0])
    assert final >= 0.25, text
    assert len(_images(nb)) == 1
