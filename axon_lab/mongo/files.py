"""Reading recorded MongoDB output files (JSON, JSON arrays, JSON lines, gzip) and telling them apart.

The workbench analyses four kinds of recorded server output: ``explain()`` documents,
slow-query log lines (structured logv2 JSON, MongoDB 4.4+), ``system.profile`` documents and
``$indexStats`` replies (plus ``db.getProfilingStatus()``). :func:`classify` looks inside a
file, never at its name, to say which kind it is.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from axon_lab.errors import InputFileError

#: Kinds :func:`classify` returns.
KINDS = ("explain", "log", "profile", "profile_status", "index_stats", "other")

#: Where the shared recorded fixtures live, relative to the repository root.
SHARED_FIXTURES = Path("..") / "shared" / "fixtures" / "mongo"
#: The permissively licensed copy kept with the tests.
TEST_FIXTURES = Path("tests") / "fixtures" / "mongo"


def repo_root() -> Path:
    """The checkout that holds the ``axon_lab`` package (editable install)."""
    return Path(__file__).resolve().parents[2]


def default_fixture_dir() -> Path | None:
    """The first folder of recorded MongoDB files that exists, or ``None``.

    Looks for ``../shared/fixtures/mongo`` beside the checkout (every recorded file), then the
    project's own ``tests/fixtures/mongo`` (the permissively licensed subset).
    """
    root = repo_root()
    for cand in (root / SHARED_FIXTURES, root / TEST_FIXTURES):
        if cand.is_dir():
            return cand.resolve()
    return None


def find_fixture(name: str) -> Path | None:
    """A recorded file by name: the project's permissive copy first, then the shared folder."""
    root = repo_root()
    for folder in (root / TEST_FIXTURES, root / SHARED_FIXTURES):
        if (folder / name).is_file():
            return (folder / name).resolve()
    return None


def _gunzip(raw: bytes) -> tuple[bytes, bool]:
    """Decompressed gzip data and whether it was complete (a cut file gives what came before)."""
    import io

    out = bytearray()
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
        try:
            while chunk := gz.read1(1 << 16):
                out += chunk
        except EOFError:  # "Compressed file ended before the end-of-stream marker"
            return bytes(out), False
    return bytes(out), True


def read_text_partial(path: Path | str) -> tuple[str, bool]:
    """The text of ``path`` and whether it was whole: a gzip file cut short gives the text
    that came before the cut (logs are read line by line, so that text is still useful).

    Raises
    ------
    InputFileError
        When the file is missing, a folder, not UTF-8 text, or not gzip data at all.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a folder, not a file") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    complete = True
    if raw[:2] == b"\x1f\x8b":
        try:
            raw, complete = _gunzip(raw)
        except (OSError, ValueError) as exc:
            raise InputFileError(path, f"broken gzip data ({exc})") from None
    try:
        return raw.decode("utf-8-sig"), complete
    except UnicodeDecodeError as exc:
        if not complete:  # the cut may fall inside a multi-byte character
            return raw[: exc.start].decode("utf-8-sig"), complete
        raise InputFileError(path, "not UTF-8 text (is it a binary BSON dump?)") from None


def read_text(path: Path | str) -> str:
    """The text of ``path`` (gzip-compressed files are decompressed).

    Raises
    ------
    InputFileError
        When the file is missing, a folder, not UTF-8 text, or gzip data cut short.
    """
    text, complete = read_text_partial(path)
    if not complete:
        raise InputFileError(path, "gzip data is cut short (the file is incomplete)")
    return text


def read_documents(path: Path | str) -> list[Any]:
    """The JSON documents in ``path``: one document, a JSON array, or one document per line.

    A top-level array is returned as its elements; JSON lines (``mongoexport``, log files) are
    parsed line by line, and lines that are not JSON are skipped only if at least one line is.

    Raises
    ------
    InputFileError
        Naming the file and the problem when nothing in it is JSON.
    """
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise InputFileError(path, "is empty")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as whole_err:
        docs = []
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith(("{", "[")):
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        if not docs:
            raise InputFileError(
                path,
                f"not JSON or JSON lines ({whole_err.msg} at line "
                f"{whole_err.lineno} column {whole_err.colno})",
            ) from None
        return docs
    return list(doc) if isinstance(doc, list) else [doc]


def read_lines(path: Path | str) -> list[str]:
    """The non-empty lines of a (possibly gzip-compressed) text file."""
    return [ln for ln in read_text(path).splitlines() if ln.strip()]


def kind_of(doc: Any) -> str:
    """Which kind of recorded output one parsed JSON document is (see :data:`KINDS`)."""
    if not isinstance(doc, Mapping):
        return "other"
    if (
        "queryPlanner" in doc
        or isinstance(doc.get("stages"), list)
        or (  # an executionStats section quoted on its own
            isinstance(doc.get("executionStats"), Mapping)
            and isinstance(doc["executionStats"].get("executionStages"), Mapping)
        )
        or (
            isinstance(doc.get("shards"), Mapping)
            and ("splitPipeline" in doc or "serverInfo" in doc)
        )
    ):
        return "explain"
    if "attr" in doc and "msg" in doc and "t" in doc:
        return "log"
    if "accesses" in doc and "key" in doc and "name" in doc:
        return "index_stats"
    if "op" in doc and "ns" in doc and ("millis" in doc or "ts" in doc):
        return "profile"
    if "was" in doc and "slowms" in doc:
        return "profile_status"
    return "other"


def classify(path: Path | str) -> str:
    """The kind of recorded output in ``path`` (by content; ``"other"`` if none).

    Never raises for unreadable or non-JSON files: they are ``"other"``.
    """
    try:
        docs = read_documents(path)
    except InputFileError:
        return "other"
    kinds = {kind_of(d) for d in docs[:20]}
    kinds.discard("other")
    if len(kinds) == 1:
        return kinds.pop()
    return "other"


def scan_folder(folder: Path | str) -> dict[str, list[Path]]:
    """Every recorded file in ``folder`` (not recursive), grouped by kind and sorted by name.

    Raises
    ------
    InputFileError
        When ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "no such folder")
    out: dict[str, list[Path]] = {k: [] for k in KINDS}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            out[classify(p)].append(p)
    return out
