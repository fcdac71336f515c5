"""``sweep_summary.csv``: the records of ``sweep_summary.json`` as a table (pandas, spreadsheets).

Same columns as the JSON: every record field in schema order, then the swept parameters; the
nested ``config`` (object) and ``swept`` (list) are JSON text in their cells.  Measured numbers are
rounded to the precision they have (:func:`rounded`): an accuracy to a tenth of one test image,
times and throughputs to what a clock and a count can tell; the JSON keeps every digit.  A text cell
that a spreadsheet would evaluate as a formula (``=HYPERLINK(...)``, ``@SUM(...)``, ``-2+3``) starts
with ``'`` (OWASP's advice against CSV injection); numbers stay numbers.  Written with the JSON, at
the end and in interim summaries.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.files import SUMMARY_CSV
from pytest_sweep.matrix.records import DECIMALS, PERCENT_METRICS, SweepResult

#: What starts a formula in a spreadsheet cell (OWASP, "CSV Injection"): a text cell starting with
#: one of these gets a ``'`` in front, so Excel, LibreOffice and Google Sheets show it as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise(text: str) -> str:
    """A text cell a spreadsheet shows as the text it is: ``=HYPERLINK(...)`` -> ``'=HYPERLINK(...)``.

    A text that is a plain number (``-0.5``, ``+3``, ``1e-3``) is left as it is: it is no formula,
    and a spreadsheet reads it as the number.
    """
    if text.startswith(FORMULA_START) and not _NUMBER_RE.fullmatch(text):
        return "'" + text
    return text


def rounded(key: str, value: Any, record: dict[str, Any]) -> Any:
    """A measured number rounded to its precision (anything else unchanged).

    An accuracy counted over N test images moves in steps of 100 / N pp; one more decimal than
    that step needs tells every value apart (360 images: 0.28 pp steps, 2 decimals; 10,000: 3).
    """
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        return value
    if key in PERCENT_METRICS:  # unknown test sets keep 2 decimals
        n = record.get("test_samples")
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return round(value, max(0, math.ceil(math.log10(n / 100))) + 1)
        return round(value, 2)
    places = DECIMALS.get(key)
    return value if places is None else round(value, places)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=False)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return neutralise(value)
    return value


def render_csv(records: list[dict[str, Any]]) -> str:
    """CSV text with a header of every key, in the order the records first use them.

    Numbers stay numbers (``-0.5``); a text cell that a spreadsheet would run as a formula is
    neutralised (:func:`neutralise`), column names included.
    """
    columns = list(dict.fromkeys(k for r in records for k in r))
    buf = io.StringIO()
    # RFC 4180's line end: the csv module quotes a field that holds any character of it, so a text
    # with a bare carriage return cannot start a new row
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([neutralise(str(c)) for c in columns])
    for rec in records:
        writer.writerow([_cell(rounded(c, rec.get(c), rec)) for c in columns])
    return buf.getvalue()


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    storage.write_text_atomic(storage.sweep_path(sweep.dir, SUMMARY_CSV), render_csv(sweep.records))


@pytest.hookimpl
def pytest_sweep_progress(config: pytest.Config, sweep: SweepResult) -> None:
    storage.write_text_atomic(storage.sweep_path(sweep.dir, SUMMARY_CSV), render_csv(sweep.records))
