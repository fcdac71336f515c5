"""The ``pytest-sweep`` console script: the reporters, without training.

``pytest-sweep report DIR``
    re-render a finished sweep folder from its ``sweep_summary.json``: the same
    ``pytest_sweep_finished`` hook a sweep ends with, called through pluggy on the built-in
    reporters (``sweep_analysis.txt`` with the importance, next-sweep and plots sections,
    ``sweep_analysis.json``, ``sweep_importance.json``, ``refine_range``, ``plots/``,
    ``sweep_summary.csv``, ``sweep_report.html``) and on every installed ``pytest11`` plugin's.
``pytest-sweep compare A B [--fail test_acc:1.0]``
    compare sweep B with baseline A; exit 1 when a threshold is broken.
``pytest-sweep reproduce DIR TRIAL [--run] [--output OUT]``
    print the command that trains one trial of sweep DIR again (``--run``: run it and compare).
``pytest-sweep --version``
    the installed version.

Exit codes (pytest's, where they mean the same; ``docs/reference/cli.md``):

- 0: done (``compare``: no threshold broken; ``reproduce --run``: reproduced);
- 1: ``compare --fail``: a regression; ``reproduce --run``: not reproduced (nothing else exits 1,
  so CI can tell a regression apart from a broken input);
- 2: interrupted (Ctrl-C);
- 3: internal error: a bug, one line (``PYTEST_SWEEP_TRACEBACK=1`` shows the traceback);
- 4: usage error: a bad argument, a folder without a readable ``sweep_summary.json`` (a field
  of the wrong type included), a pytest plugin that cannot be loaded, or reports that could not
  be written into the folder (each reporter that failed is named; the others wrote theirs).

Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pytest_sweep import ENTRY_POINT, __version__

if TYPE_CHECKING:
    import pytest

OK = 0
REGRESSION = 1
INTERRUPTED = 2
INTERNAL_ERROR = 3
USAGE_ERROR = 4
#: Set to show the traceback of an internal error (exit code 3).
TRACEBACK_ENV = "PYTEST_SWEEP_TRACEBACK"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {_one_line(message)}\n")


def _one_line(text: str) -> str:
    from pytest_sweep.matrix.rangewrite import one_line

    return one_line(text)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _usage_error(message: str) -> int:
    print(f"pytest-sweep: error: {_one_line(message)}", file=sys.stderr)
    return USAGE_ERROR


#: The pytest arguments of the console script's own pytest config (``pytest-sweep report``): pytest-sweep's
#: entry point (also where plugin autoloading is off), no conftest, no cache, no capture, no assertion rewriting.
REPORT_PYTEST_ARGS = ("-p", ENTRY_POINT[0], "-p", "no:cacheprovider", "--noconftest", "--capture=no", "--assert=plain")


def report_config(extra: Sequence[str] = ()) -> pytest.Config:
    """A pytest config whose plugin manager holds what a sweep's would: pytest-sweep's hookspecs, its
    built-in plugins under their names and every installed ``pytest11`` plugin.

    pytest parses it as it parses a run's (``pytest.Config.fromdictargs``, the way an xdist worker
    makes its config): the ``pytest11`` entry points load unless ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``
    is set, ``PYTEST_PLUGINS`` and the ini file of the working folder count, ``PYTEST_ADDOPTS`` does
    not.  No session starts and ``pytest_configure`` is not called: the reporters get the options,
    the ini values and an empty stash.  A bad option or plugin raises :class:`pytest.UsageError`.
    """
    import warnings

    import pytest

    from pytest_sweep.entry import register_builtins

    with warnings.catch_warnings():  # an ini value only pytest knows is not this tool's business
        warnings.simplefilter("ignore")
        try:
            config = pytest.Config.fromdictargs({}, [*REPORT_PYTEST_ARGS, *extra])
        except (pytest.UsageError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a plugin that does not import (pytest's PluginImportFailure)
            cause = exc.__cause__ or exc
            raise pytest.UsageError(
                f"cannot load the pytest plugins ({exc}: {type(cause).__name__}: {cause}); "
                "fix or uninstall that plugin (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 loads none)"
            ) from None
    register_builtins(config.pluginmanager)
    return config


def report(folder: Path, threshold: str | None, limit: int | None = None) -> int:
    """Call every ``pytest_sweep_finished`` on the records of ``folder``'s ``sweep_summary.json``.

    The same hook a sweep ends with, through pluggy (:func:`~pytest_sweep.matrix.hookcall.call_each`,
    as the controller calls it): the built-in reporters and every installed plugin's reporter
    write their files, wrappers included; a reporter that fails is named and the others still write.
    """
    import pytest

    from pytest_sweep.matrix import files
    from pytest_sweep.matrix.controller import reporters_failed
    from pytest_sweep.matrix.hookcall import call_each
    from pytest_sweep.matrix.records import SweepResult
    from pytest_sweep.plugins import importance, plots
    from pytest_sweep.plugins.compare import load_baseline

    extra = []
    try:
        records = load_baseline(folder, "report", str(folder))
        if threshold is not None:
            importance.parse_threshold(threshold, "--importance-threshold")
            extra.append(f"--sweep-importance-threshold={threshold}")
        if limit is not None:
            extra.append(f"--sweep-max-combinations={limit}")
        config = report_config(extra)
        importance.threshold(config)  # an ini value the sweep would refuse is refused here too
    except (ValueError, pytest.UsageError) as exc:
        return _usage_error(str(exc))
    interrupted = any(r["status"] == "not_run" and r.get("error") == "sweep interrupted" for r in records)
    sources = list(dict.fromkeys(str(r["source"]) for r in records if r.get("source")))
    sweep = SweepResult(folder, records, interrupted=interrupted, sources=sources, from_summary=True)
    _, failures = call_each(
        config.pluginmanager, "pytest_sweep_finished", {"config": config, "sweep": sweep}, isolate=True
    )
    if failures:
        return _usage_error(
            f"report={folder}: {reporters_failed(failures)}; "
            "pass a folder you can write to (or report a copy of this one)"
        )
    from pytest_sweep.matrix import environment

    env, why = environment.load(folder)
    try:
        line = environment.summary_line(env) if env is not None else why
    except (TypeError, AttributeError, ValueError):  # an environment.json this tool did not write
        line = f"{files.ENVIRONMENT_JSON} is not readable (not the fields pytest-sweep writes)"
    print(_one_line(f"environment: {line}"))
    specs = plots.outcome(config, sweep)
    drawn = sum(1 for s in specs if s.reason is None)
    names = [files.ANALYSIS_TXT, files.ANALYSIS_JSON, files.IMPORTANCE_JSON, files.REFINE_RANGE]
    names += [files.SUMMARY_CSV, files.REPORT_HTML]
    written = [name for name in names if (folder / name).is_file()]
    print(_one_line(f"{folder}: {', '.join(written)}, {files.PLOTS_DIR}/ ({drawn} of {len(specs)} plots)"))
    return OK


def compare(baseline: Path, current: Path, fails: list[str]) -> int:
    from pytest_sweep.plugins import compare as cmp

    try:
        thresholds = [cmp.parse_threshold(text, "--fail") for text in fails]
        then = cmp.load_baseline(baseline, "baseline", str(baseline))
        now = cmp.load_baseline(current, "sweep", str(current))
    except ValueError as exc:
        return _usage_error(str(exc))
    result = cmp.compare(then, now, thresholds, str(baseline))
    for line in cmp.render(result):
        print(_one_line(line))
    from pytest_sweep.plugins.environment import compare_lines

    try:
        env_lines = compare_lines(baseline, current)
    except (TypeError, AttributeError, ValueError):  # an environment.json this tool did not write
        env_lines = ["environment: not compared (an environment.json holds fields pytest-sweep does not write)"]
    for line in env_lines:
        print(_one_line(line))
    return REGRESSION if result.regressions() else OK


def reproduce(folder: Path, trial: str, run: bool, out: Path | None) -> int:
    from pytest_sweep.plugins import reproduce as rep

    try:
        plan = rep.plan(folder, trial, out)
    except rep.ReproduceError as exc:
        return _usage_error(str(exc))
    try:
        rep.write_config(plan.record, plan.config_dir)
    except rep.ReproduceError as exc:
        return _usage_error(str(exc))
    except OSError as exc:
        return _usage_error(
            f"cannot write the trial's config under {plan.out} ({exc.strerror or exc}); pass --output=DIR"
        )
    for note in plan.notes:
        print(_one_line(f"note: {note}"))
    print(plan.shell())
    if not run:
        return 0
    verdict = rep.run(plan, rep.load_records(plan.sweep_dir))
    for line in verdict.lines:
        print(_one_line(line))
    return OK if verdict.reproduced else REGRESSION


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="pytest-sweep", description="pytest-sweep's reporters, without training")
    parser.add_argument("--version", action="version", version=f"pytest-sweep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="Re-render a sweep folder's reports from its sweep_summary.json")
    rep.add_argument("folder", type=Path, metavar="DIR")
    rep.add_argument(
        "--importance-threshold",
        default=None,
        metavar="PP",
        help="Effects below PP percentage points are unimportant (default: the seed noise, else 0.5)",
    )
    rep.add_argument(
        "--max-combinations",
        type=_positive,
        default=None,
        metavar="N",
        help="refine_range must run under --sweep-max-combinations=N (default: 10000)",
    )
    comp = sub.add_parser("compare", help="Compare sweep B with baseline sweep A")
    comp.add_argument("baseline", type=Path, metavar="A")
    comp.add_argument("current", type=Path, metavar="B")
    comp.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="METRIC:PP",
        help="Exit 1 when a trial's METRIC (test_acc, best_acc) dropped by more than PP points (repeatable)",
    )
    again = sub.add_parser("reproduce", help="Print (or --run) the command that trains one trial of a sweep again")
    again.add_argument("folder", type=Path, metavar="DIR")
    again.add_argument("trial", metavar="TRIAL", help="config_NNN, the trial's folder name or its node id")
    again.add_argument("--run", action="store_true", help="Run it into a new sweep folder and compare with the record")
    again.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="OUT",
        help="Where its config and sweep go (default: DIR/reproduce)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            return report(args.folder, args.importance_threshold, args.max_combinations)
        if args.command == "reproduce":
            return reproduce(args.folder, args.trial, args.run, args.output)
        return compare(args.baseline, args.current, args.fail)
    except KeyboardInterrupt:
        print("pytest-sweep: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # a bug: one line and its own code, never Python's 1 ("a regression")
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        print(
            f"pytest-sweep: internal error: {_one_line(f'{type(exc).__name__}: {exc}')[:300]}; this is a bug, "
            f"please report it ({TRACEBACK_ENV}=1 shows the traceback)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
