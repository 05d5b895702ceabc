"""The smoke HTML is fit to share: summary first, no machine-local names, every image with alt
text, tables formatted for people, no progress-bar debris.
"""

from __future__ import annotations

import html as html_lib
import os
import re
import socket
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def _text(page: str) -> str:
    """The page without embedded image data (base64 may contain any short word)."""
    return html_lib.unescape(_DATA_URI.sub("data:", page))


def _local_names(out: Path, data_dir: Path) -> list[str]:
    names = {str(out), str(out.resolve()), str(data_dir), str(data_dir.resolve()), str(Path.home())}
    return sorted(n for n in names if len(n) > 1)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_machine_local_names_in_shared_html(smoke_report, smoke_data_dir, path):
    results, out = smoke_report
    page = _text(results[path.stem].html.read_text(encoding="utf-8"))
    for local in _local_names(out, smoke_data_dir):
        assert local + "/" not in page and f"{local}'" not in page and f'{local}"' not in page, (
            f"{path.stem}: {local} in the HTML"
        )
        assert not re.search(re.escape(local) + r"(?![\w.-])", page), local
    host = socket.gethostname()
    assert not re.search(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", page), (
        f"{path.stem}: host name {host!r} in the HTML"
    )
    assert "PosixPath(" not in page
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if user and user != "root" and len(user) > 2:  # "root" is also an English word here
        assert f"/{user}/" not in page


def test_index_has_no_machine_local_names(smoke_report):
    _, out = smoke_report
    page = _text((out / "index.html").read_text(encoding="utf-8"))
    host = socket.gethostname()
    assert not re.search(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", page)
    assert str(out) not in page and str(Path.home()) + "/" not in page


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_image_has_alt_text(smoke_report, path):
    results, _ = smoke_report
    page = results[path.stem].html.read_text(encoding="utf-8")
    images = re.findall(r"<img\b[^>]*>", page)
    for img in images:
        alt = re.search(r"""\balt=(['"])(.*?)\1""", img, re.S)
        assert alt and alt.group(2).strip(), f"{path.stem}: image without alt text"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_report_opens_with_the_summary_and_formatted_tables(smoke_report, path):
    results, _ = smoke_report
    page = results[path.stem].html.read_text(encoding="utf-8")
    body = page[page.index("<body") :]
    first_heading = re.search(r"<h1[^>]*>(.*?)</h1>", body, re.S)
    assert first_heading and first_heading.group(1).startswith("Summary"), path.stem
    assert "What was run:" in body
    text = _text(re.sub(r"<(style|script)\b.*?</\1>", "", body, flags=re.S))
    visible = re.sub(r"<[^>]+>", " ", text)
    assert not re.search(r"\bNaN\b", visible), f"{path.stem}: NaN shown"
    assert 'class="dataframe"' not in page, f"{path.stem}: a raw DataFrame is shown"
    assert "IProgress not found" not in visible and "it/s]" not in visible
