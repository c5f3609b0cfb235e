"""The HTML report's skeleton, style and scripts are package data files: every one of them
is declared for the wheel, and the page is assembled from them with nothing left over."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import tomllib

from sysspan.reporters import html

TEMPLATES = Path(html.__file__).parent / "templates"
REPO = Path(__file__).resolve().parents[2]


def test_every_template_file_is_package_data():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = declared["sysspan.reporters"]
    files = sorted(p.relative_to(TEMPLATES.parent).as_posix() for p in TEMPLATES.iterdir())
    assert {"templates/report.html", "templates/report.css", "templates/report.js", "templates/errors.js"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, g) for g in globs), f"{name} would be missing from the wheel"


def test_page_is_assembled_from_the_files():
    from tests.unit.test_aggregate import small_trace

    t, _ids = small_trace()
    page = html.render_html(t.aggregate().report(), "assets")
    for name in ("report.css", "report.js", "errors.js"):
        assert (TEMPLATES / name).read_text(encoding="utf-8") in page
    assert "$" not in page.replace((TEMPLATES / "report.js").read_text(encoding="utf-8"), "")
