"""Hostile values through every file we write (issue 16, further round).

A record whose text fields hold what an attacker or an accident would put there (markup, formulas,
control characters, line breaks, unicode tricks, huge values) is rendered by each writer: the CSV
reads back cell for cell (a formula neutralised), the HTML page shows it as text, the analysis and
the terminal table stay one line per row with no raw control character, ``refine_range`` reads
back to the same values or is refused with its reason, and the plots are drawn or left out with
a reason.  Unit level: the writers are called on the records directly.
"""

from __future__ import annotations

import csv
import html.parser
import io
from pathlib import Path
from typing import Any

import pytest
from synthetic import grid_records

from pytest_sweep.matrix.rangeconfig import parse_text
from pytest_sweep.plugins import html_report, importance, plots, refine
from pytest_sweep.plugins.analysis import render_analysis, render_table
from pytest_sweep.plugins.csv_report import neutralise, render_csv

HOSTILE = {
    "script": "<script>alert(1)</script>",
    "attribute-break": '" onmouseover="alert(1)',
    "pre-break": "</pre><h1>x</h1>",
    "comment-break": "--><!--",
    "javascript-url": "javascript:alert(1)",
    "formula-eq": '=HYPERLINK("http://evil","click")',
    "formula-dde": "=cmd|' /C calc'!A0",
    "formula-plus": "+1+1",
    "formula-minus": "-1+1",
    "formula-at": "@SUM(1)",
    "formula-tab": "\t=1",
    "formula-cr": "\r=1",
    "newline-injection": "a\nCONFIG_EVIL=1",
    "crlf": "a\r\nb",
    "nul": "a\x00b",
    "ansi-clear": "\x1b[2J\x1b[H",
    "ansi-title": "\x1b]0;pwned\x07",
    "backspaces": "abc\b\b\bxyz",
    "bell": "\x07",
    "rtl-override": "\u202egnp.exe",
    "line-separator": "a\u2028b",
    "zero-width": "a\u200bb",
    "combining": "e\u0301" * 50,
    "emoji": "\U0001f600\U0001f4a5",
    "cjk": "\u6f22\u5b57",
    "quote-bar-colon": 'a"|"b:c',
    "backslashes": "C:\\new\\table\\",
    "range-lookalike": "1:1:3",
    "long": "x" * 20_000,
    "long-words": " ".join(["y" * 300] * 10),
    "empty": "",
    "spaces": "   ",
}


def _records(value: str) -> list[dict[str, Any]]:
    records = grid_records(
        {"CONFIG_NAME": [value, "plain"], "CONFIG_X": ["1", "2"]},
        lambda v: 50.0 + float(v["CONFIG_X"]) + (v["CONFIG_NAME"] == "plain"),
        fixed={"CONFIG_FIXED": value},
        failed={4},
        source=f"/w/{value}.rc",
    )
    for rec in records:
        rec["trial_dir"] = None
        rec["trainer"] = value
    records[3]["error"] = value
    return records


class _Text(html.parser.HTMLParser):
    """The page's visible text and every tag it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, _ in attrs:
            assert not name.startswith("on"), f"an event handler attribute: {name}"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _no_raw_control(text: str) -> None:
    for line in text.split("\n"):
        assert all(c.isprintable() or c == "\t" for c in line), repr(line[:120])


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_the_csv_reads_back_cell_for_cell(value: str) -> None:
    records = _records(value)
    rows = list(csv.DictReader(io.StringIO(render_csv(records), newline="")))
    assert len(rows) == len(records)
    for row, rec in zip(rows, records, strict=True):
        assert row["trainer"] == neutralise(value)
        assert row["CONFIG_NAME"] == neutralise(rec["config"]["CONFIG_NAME"])
        assert row["test_acc"] == ("" if rec["test_acc"] is None else str(rec["test_acc"]))


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_the_html_page_shows_hostile_values_as_text(tmp_path: Path, value: str) -> None:
    records = _records(value)
    imp = importance.compute(records, 0.5)
    text, _ = refine.rendered(refine.refine(records, imp), "s", None)
    page = html_report.render(tmp_path, records, imp, text, [])
    parser = _Text()
    parser.feed(page)
    assert set(parser.tags) <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "a", "table", "thead", "tbody", "tr", "th",
        "td", "ul", "li", "code", "details", "summary", "b", "span", "pre", "figure", "img", "figcaption", "script",
    }  # fmt: skip
    assert page.count("<script>") == 1  # ours, at the end
    assert "javascript:" not in "".join(a for a in page.split('href="')[1:] if a.startswith("javascript"))


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_the_analysis_and_the_table_keep_one_line_per_row(value: str) -> None:
    records = _records(value)
    text = render_analysis(records, sections=[importance.render_section(importance.compute(records, 0.5))])
    _no_raw_control(text)
    assert "\nCONFIG_EVIL=1" not in text
    table = render_table(records)
    _no_raw_control(table)
    rows = table.splitlines()
    assert len(rows) == 2 + 3  # header, rule, one row per passed trial


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_refine_range_reads_back_or_says_why(value: str) -> None:
    records = _records(value)
    imp = importance.compute(records, 0.5)
    ref = refine.refine(records, imp)
    text, why = refine.rendered(ref, f"sweep {value}", None)
    if text is None:
        assert why is not None and ("\n" in value or "\r" in value) and "line break" in why
        assert "\n" not in why
        return
    params = {p.key: p.values for p in parse_text(text).params}
    assert params["CONFIG_FIXED"] == (value,)
    assert set(params) == {"CONFIG_FIXED", "CONFIG_NAME", "CONFIG_X"}


@pytest.mark.parametrize("value", ["1e308", "-1e308", "1e-300", "nan", "inf", "0", "1" * 400, "-0.0"])
def test_the_plots_draw_or_leave_out_hostile_numbers(tmp_path: Path, value: str) -> None:
    records = grid_records(
        {"CONFIG_X": [value, "2", "3"]}, lambda v: {value: 10.0, "2": 20.0, "3": 30.0}[v["CONFIG_X"]]
    )
    for rec in records:
        rec["trial_dir"] = None
    specs = plots.write(tmp_path, records)
    assert {s.name for s in specs} >= {"test_acc_vs_x.png", "parallel_coordinates.png"}
    for spec in specs:
        assert spec.reason is None or "\n" not in spec.reason
        if spec.reason is None:
            assert (tmp_path / "plots" / spec.name).stat().st_size > 0


@pytest.mark.parametrize("value", ["1e999999", "-1e999999", "1e-999999", "9" * 5000])
@pytest.mark.parametrize("symbols", [None, "float"], ids=["unknown-key", "float-symbol"])
def test_refine_range_of_an_absurd_number_reads_back(value: str, symbols: str | None) -> None:
    """Found by the round-trip property test: a grid around 1e999999 needed a number of a million digits."""
    from pytest_sweep.matrix.symbols import Symbol, SymbolTable

    table = SymbolTable([Symbol("CONFIG_X", "float", None, "t")]) if symbols else None
    records = grid_records({"CONFIG_X": [value, "2"]}, lambda v: 50.0 + (v["CONFIG_X"] == "2"))
    ref = refine.refine(records, importance.compute(records, 0.5), table)
    text, why = refine.rendered(ref, "s", table)
    assert why is None and text is not None
    assert {p.key: p.values for p in parse_text(text).params}["CONFIG_X"] == ("2", value)
