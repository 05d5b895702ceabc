"""Execute a notebook with papermill, keep its sidecar, render HTML (code hidden by default).

A failing notebook still produces an executed copy and an HTML page that shows the failure,
and a sidecar with ``status == "failed"`` if the notebook did not record one itself.
Secrets (passwords in URIs) are redacted in the saved notebook and HTML.
"""

from __future__ import annotations

import ast
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axon_lab.errors import ConfigError, InputFileError
from axon_lab.redact import redact_text
from axon_lab.report import sidecar

#: The checkout holding the notebooks (never shown in a shared report).
NOTEBOOK_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunResult:
    """Where the outputs of one notebook run went, and how it ended."""

    notebook: str
    name: str
    status: str
    seconds: float
    executed: Path
    html: Path
    sidecar: Path | None
    error: str | None = None
    verdict: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def notebook_parameters(path: Path | str) -> dict[str, dict[str, Any]]:
    """The notebook's declared parameters (name → inferred type, default, help) via papermill."""
    import papermill

    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "no such notebook")
    try:
        params = papermill.inspect_notebook(str(path))
    except Exception as exc:
        raise InputFileError(path, f"not a readable notebook ({exc})") from None
    return {k: dict(v) for k, v in params.items()}


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce_parameters(path: Path | str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check names against the notebook's parameters and convert CLI strings to declared types.

    Raises :class:`ConfigError` naming the parameter and the problem (unknown name lists the
    valid ones).
    """
    declared = notebook_parameters(path)
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in declared:
            valid = ", ".join(sorted(declared)) or "(none)"
            raise ConfigError(f"{Path(path).name}: unknown parameter {name!r}; valid: {valid}")
        typ = (declared[name].get("inferred_type_name") or "None").split("[")[0].strip().lower()
        if not isinstance(value, str):
            out[name] = value
            continue
        try:
            if typ == "bool":
                low = value.strip().lower()
                if low not in _TRUE | _FALSE:
                    raise ValueError("expected true/false")
                out[name] = low in _TRUE
            elif typ == "int":
                out[name] = int(value)
            elif typ == "float":
                out[name] = float(value)
            elif typ in ("list", "dict", "tuple"):
                out[name] = (
                    json.loads(value) if value.strip()[:1] in "[{" else ast.literal_eval(value)
                )
            elif typ == "str":
                out[name] = value
            else:  # untyped: best effort like papermill's -p
                try:
                    out[name] = ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    out[name] = value
        except (ValueError, SyntaxError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"{Path(path).name}: parameter {name}={value!r} is not a valid {typ} ({exc})"
            ) from None
    return out


_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")


def local_names(run_dir: Path | str | None = None) -> list[tuple[str, str]]:
    """``[(machine-local text, placeholder)]``: what a shared report must not show.

    The run directory, the data directory, the checkout, the temporary directory, the home
    directory (which holds the user name) and the host name, longest first.
    """
    import socket
    import tempfile

    from axon_lab.config import get_settings

    paths: dict[str, str] = {}
    if run_dir is not None:
        paths[str(Path(run_dir).resolve())] = "[run dir]"
        paths[str(Path(run_dir))] = "[run dir]"
    data_dirs = [os.environ.get("AXON_DATA_DIR")]
    try:
        data_dirs.append(str(get_settings().data_dir))
    except Exception:  # settings unreadable: nothing to hide there
        pass
    for d in data_dirs:
        if d:
            paths.setdefault(str(Path(d).resolve()), "[data dir]")
    paths.setdefault(str(NOTEBOOK_ROOT), "[checkout]")
    paths.setdefault(str(Path(tempfile.gettempdir()).resolve()), "[tmp]")
    home = str(Path.home())
    if home not in ("/", ""):
        paths.setdefault(home, "~")
    out = sorted(((k, v) for k, v in paths.items() if len(k) > 1), key=lambda kv: -len(kv[0]))
    host = socket.gethostname()
    if host and host != "localhost":
        out.append((host, "[host]"))
    return out


def scrub_local(text: str, names: list[tuple[str, str]] | None = None) -> str:
    """``text`` without machine-local paths and the host name (see :func:`local_names`);
    embedded images (``data:`` URIs) are left as they are.
    """
    names = local_names() if names is None else names
    if not names or not text:
        return text

    def clean(part: str) -> str:
        for local, placeholder in names:
            if local.startswith("/"):
                part = re.sub(re.escape(local) + r"(?![\w.-])", placeholder, part)
            else:
                part = re.sub(r"(?<![\w.-])" + re.escape(local) + r"(?![\w-])", placeholder, part)
        return part

    pieces, last = [], 0
    for m in _DATA_URI.finditer(text):
        pieces.append(clean(text[last : m.start()]))
        pieces.append(m.group(0))
        last = m.end()
    pieces.append(clean(text[last:]))
    return "".join(pieces)


def _redact_notebook(nb: Any, names: list[tuple[str, str]] | None = None) -> Any:
    import nbformat

    from axon_lab.redact import redact

    def clean(text: str) -> str:
        return scrub_local(redact_text(text), names)

    nb.metadata = nbformat.from_dict(redact(json.loads(json.dumps(nb.metadata))))
    nb.metadata.get("papermill", {}).pop("input_path", None)
    nb.metadata.get("papermill", {}).pop("output_path", None)
    for cell in nb.cells:
        cell.source = clean(cell.source)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = clean(
                    out["text"] if isinstance(out["text"], str) else "".join(out["text"])
                )
            for key in ("text/plain", "text/html", "text/markdown"):
                data = out.get("data", {})
                if key in data:
                    v = data[key]
                    data[key] = clean(v if isinstance(v, str) else "".join(v))
            if "evalue" in out:
                out["evalue"] = clean(out["evalue"])
            if "traceback" in out:
                out["traceback"] = [clean(t) for t in out["traceback"]]
    return nb


def add_summary(nb: Any, doc: dict[str, Any] | None) -> Any:
    """Put the summary of the run (:mod:`axon_lab.report.summary`) first in ``nb``."""
    import nbformat

    from axon_lab.report.summary import summary_markdown

    if not doc:
        return nb
    cell = nbformat.v4.new_markdown_cell(summary_markdown(doc))
    cell.metadata["tags"] = ["axon-summary"]
    nb.cells = [c for c in nb.cells if "axon-summary" not in c.get("metadata", {}).get("tags", [])]
    nb.cells.insert(0, cell)
    return nb


def to_html(nb: Any, *, show_code: bool = False, names: list[tuple[str, str]] | None = None) -> str:
    """Nbconvert HTML (lab template); code cells hidden unless ``show_code``; secrets redacted
    and machine-local paths and the host name replaced (:func:`scrub_local`).
    """
    import sys

    from nbconvert import HTMLExporter

    # nbconvert finds its templates under <prefix>/share/jupyter; in a venv made with
    # --system-site-packages they live under the base interpreter's prefix instead.
    base_share = os.path.join(sys.base_prefix, "share", "jupyter")
    paths = os.environ.get("JUPYTER_PATH", "").split(os.pathsep)
    if os.path.isdir(os.path.join(base_share, "nbconvert")) and base_share not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (*paths, base_share) if p)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = not show_code
    exporter.exclude_input_prompt = not show_code
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    return scrub_local(redact_text(body), names)


def this_interpreter_kernel(root: Path | None = None) -> Path:
    """A Jupyter data dir whose ``python3`` kernel is the interpreter running axon-lab.

    papermill asks for the kernel ``python3``; found through the usual Jupyter paths it can be
    another Python on the machine (a system one without axon_lab, or another version). Put
    first on ``JUPYTER_PATH``, this dir's spec wins: the kernel is ``sys.executable``.
    """
    import hashlib
    import sys

    key = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    base = (root or Path(tempfile.gettempdir())) / f"axon-lab-jupyter-{key}"
    spec_dir = base / "kernels" / "python3"
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version_info.major}.{sys.version_info.minor} (axon-lab)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    path = spec_dir / "kernel.json"
    text = json.dumps(spec, indent=1)
    if not path.exists() or path.read_text() != text:
        spec_dir.mkdir(parents=True, exist_ok=True)
        tmp = spec_dir / f".kernel.{os.getpid()}.json"
        tmp.write_text(text)
        os.replace(tmp, path)
    return base


def ipc_kernel_manager() -> type:
    """A kernel manager that talks to the kernel over Unix sockets instead of loopback TCP.

    ipykernel 7 warns (on the run's stderr) that a TCP kernel sends code and outputs in plain
    text; IPC sockets live in the Jupyter runtime dir, readable by this user only, and are
    removed with the connection file when the kernel stops.
    """
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

    return IPCKernelManager


def run_notebook(
    notebook: Path | str,
    out_dir: Path | str,
    *,
    parameters: Mapping[str, Any] | None = None,
    show_code: bool = False,
    timeout_s: int | None = 1800,
    env: Mapping[str, str] | None = None,
) -> RunResult:
    """Execute ``notebook`` into ``out_dir`` (executed .ipynb, .html, sidecar); never raises on
    a failing notebook: the failure is in the result, the HTML and the sidecar.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb_path = Path(notebook)
    params = coerce_parameters(nb_path, parameters or {})
    name = nb_path.stem
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    executed = out / f"{name}.ipynb"
    html = out / f"{name}.html"
    sidecar_path = out / f"{name}.results.json"
    if sidecar_path.exists():
        sidecar_path.unlink()
    # a static report cannot show live progress: no tqdm bars (text or widget) in its outputs
    env = {
        "TQDM_DISABLE": os.environ.get("TQDM_DISABLE") or "1",
        # the kernel named python3 is this interpreter, whatever else is installed
        "JUPYTER_PATH": os.pathsep.join(
            filter(None, [str(this_interpreter_kernel()), os.environ.get("JUPYTER_PATH")])
        ),
        **(env or {}),
    }
    saved_env = {k: os.environ.get(k) for k in [sidecar.OUT_DIR_ENV, *env]}
    os.environ[sidecar.OUT_DIR_ENV] = str(out.resolve())
    os.environ.update(env)
    t0 = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(
            str(nb_path),
            str(executed),
            parameters=params,
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
            cwd=str(nb_path.parent.resolve()),
            execution_timeout=timeout_s,
            kernel_manager_class=ipc_kernel_manager(),
        )
    except PapermillExecutionError as exc:
        error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel died, timeout, bad notebook
        error = f"{type(exc).__name__}: {exc}"
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    names = local_names(out)
    error = scrub_local(redact_text(" ".join(error.split())), names) if error else None
    if executed.exists():
        nb = nbformat.read(executed, as_version=4)
    else:
        nb = nbformat.read(nb_path, as_version=4)
    doc = None
    if sidecar_path.exists():
        doc = sidecar.load(sidecar_path)
    if error and (doc is None or doc.get("status") != "failed"):
        results = doc["results"] if doc else {}
        sidecar.record(
            name,
            results,
            parameters=params,
            status="failed",
            error=error,
            verdict={"status": "fail", "summary": f"notebook failed: {error}"[:300]},
            out_dir=out,
        )
        doc = sidecar.load(sidecar_path)
    nb = add_summary(nb, doc)
    nb = _redact_notebook(nb, names)
    if error:
        nb.cells.insert(
            1 if doc else 0,  # after the summary, which says FAIL and why
            nbformat.v4.new_markdown_cell(
                f"# ❌ Notebook failed\n\n`{name}` stopped with an error: **{error}**\n\n"
                "Results recorded before the failure are kept below."
            ),
        )
    nbformat.write(nb, executed)
    html.write_text(to_html(nb, show_code=show_code, names=names), encoding="utf-8")
    return RunResult(
        notebook=str(nb_path),
        name=name,
        status="failed" if error else "ok",
        seconds=round(seconds, 2),
        executed=executed,
        html=html,
        sidecar=sidecar_path if sidecar_path.exists() else None,
        error=error,
        verdict=(doc or {}).get("verdict"),
        parameters=params,
    )
