"""``sweep_summary.csv``: the records of ``sweep_summary.json`` as a table (pandas, spreadsheets).

Same columns as the JSON: every record field in schema order, then the swept parameters; the
nested ``config`` (object) and ``swept`` (list) are JSON text in their cells.  Written with the
JSON, at the end and in interim summaries.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.records import SweepResult

SUMMARY_CSV = "sweep_summary.csv"


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=False)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def render_csv(records: list[dict[str, Any]]) -> str:
    """CSV text with a header of every key, in the order the records first use them."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for rec in records:
        writer.writerow([_cell(rec.get(c)) for c in columns])
    return buf.getvalue()


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    storage.write_text_atomic(sweep.dir / SUMMARY_CSV, render_csv(sweep.records))


@pytest.hookimpl
def pytest_sweep_progress(config: pytest.Config, sweep: SweepResult) -> None:
    storage.write_text_atomic(sweep.dir / SUMMARY_CSV, render_csv(sweep.records))
