"""The sweep of one pytest run: parsed sources, trials, records, and the end-of-run files."""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from matrix import options, storage
from matrix.errors import RangeConfigError
from matrix.grid import Combination, expand
from matrix.generate import read_config_dir
from matrix.rangeconfig import RangeConfig, parse_file
from matrix.resume import finished_trials, resume_dir, reusable
from matrix.records import METRIC_KEYS, SweepResult, clean_number, new_record
from matrix.symbols import Symbol, SymbolTable
from matrix.timeout import trial_timeout
from matrix.trial import Trial, TrialFailed, derive_seed, trial_id

if TYPE_CHECKING:
    from matrix.collect import SweepItem

RECORD_PROPERTY = "sweep_record"
#: The error of a trial that an interim summary (``pytest_sweep_progress``) lists as not run.
NOT_FINISHED_YET = "not finished when this summary was written"


@dataclass
class Source:
    """A range file or a generated config folder, parsed and expanded."""

    path: Path
    kind: str  # "range" | "dir"
    combinations: list[Combination]
    rc: RangeConfig | None = None
    group: str = ""
    typed: dict[tuple[str, str], Any] = field(default_factory=dict)
    #: range files only: (typed values shared by every combination, sorted keys of the raw config)
    shared: tuple[dict[str, Any], tuple[str, ...]] | None = None


def _suggest_defconfig(raw: str, path: Path, root: Path) -> None:
    """A missing range file whose name is one of the project's defconfigs: say where it is.

    The sweep guide writes ``resnet18/defconfigs/NAME``; the files live in ``defconfigs/NAME``.
    """
    if path.exists():
        return
    candidate = root / "defconfigs" / path.name
    if candidate.is_file():
        raise pytest.UsageError(
            f"{raw}: no such range config; did you mean --range-config={candidate}? "
            "(the guide's resnet18/defconfigs/ is defconfigs/ here)"
        )


def _usage(exc: RangeConfigError) -> pytest.UsageError:
    return pytest.UsageError(str(exc))


def one_line(exc: BaseException, limit: int = 300) -> str:
    if isinstance(exc, TrialFailed):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}".strip()
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SweepSession:
    """State of the sweep for one pytest process (controller, serial run or worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.worker = config.workerinput["workerid"] if self.is_worker else "main"  # type: ignore[attr-defined]
        self.symbols = collect_symbols(config)
        self._defaults = self.symbols.defaults()
        self.overrides = options.overrides(config)
        self.limit = options.max_combinations(config)
        self.timeout = config.getoption("trial_timeout")
        self.sources = self._load_sources()
        self._check_overrides()
        self.resuming = config.getoption("resume") is not None
        if self.is_worker:
            self.dir = Path(config.workerinput["sweep_dir"])  # type: ignore[attr-defined]
        elif self.resuming:
            self.dir = resume_dir(options.output_root(config), config.getoption("resume"),
                                  config.invocation_params.dir)
        else:
            self.dir = storage.new_sweep_dir(options.output_root(config))
        self._done: dict[str, dict[str, Any]] | None = None
        self.records: dict[str, dict[str, Any]] = {}
        # collected sweep items, in order: node id -> (trial, skip reason); records are built lazily
        self.expected: dict[str, tuple[Trial, str | None]] = {}
        self.interrupted = False
        self.finished = False
        self.result: SweepResult | None = None
        self._by_id: dict[str, list[tuple[Source, Combination]]] = {}
        self.progress: Callable[[str], None] | None = None
        self.summary_interval = options.summary_interval(config)
        self._next_summary = time.monotonic() + self.summary_interval

    # -- parsing (configure time, so that mistakes are usage errors) ----------------
    def _load_sources(self) -> list[Source]:
        cfg = self.config
        sources: list[Source] = []
        base = cfg.invocation_params.dir
        for raw in cfg.getoption("range_config"):
            path = (base / raw).resolve()
            _suggest_defconfig(raw, path, cfg.rootpath)
            try:
                rc = parse_file(path if path.exists() else raw)
                combos = expand(rc, limit=self.limit)
            except RangeConfigError as exc:
                raise _usage(exc) from None
            sources.append(Source(path, "range", combos, rc))
        for raw in cfg.getoption("config_dir"):
            path = (base / raw).resolve()
            try:
                combos = read_config_dir(path if path.exists() else raw)
            except RangeConfigError as exc:
                raise _usage(exc) from None
            if len(combos) > self.limit:
                raise pytest.UsageError(
                    f"{raw}: {len(combos)} configs exceed the limit of {self.limit}; "
                    f"raise it with --max-combinations={len(combos)}"
                )
            sources.append(Source(path, "dir", combos))
        for source in sources:
            self._type_values(source)
        if len(sources) > 1:  # one folder per trial, even where two files share config names
            seen: dict[str, int] = {}
            for source in sources:
                n = seen[source.path.name] = seen.get(source.path.name, 0) + 1
                source.group = source.path.name if n == 1 else f"{source.path.name}{n}"
        return sources

    def _type_values(self, source: Source) -> None:
        for combo in source.combinations:
            for key, raw in combo.values.items():
                if (key, raw) in source.typed:
                    continue
                line = combo.lines.get(key, 0) or None
                try:
                    source.typed[(key, raw)] = self.symbols.coerce(key, raw, combo.source, line or 0)
                except RangeConfigError as exc:
                    exc.line = line
                    raise _usage(exc) from None

    def _check_overrides(self) -> None:
        self.typed_overrides: dict[str, Any] = {}
        for key, raw in self.overrides.items():
            if key not in self.symbols:
                raise pytest.UsageError(
                    f"--sweep-set {key}={raw}: {key} is not a known symbol{self.symbols.suggest(key)} "
                    "(pytest --sweep-symbols lists them)"
                )
            try:
                self.typed_overrides[key] = self.symbols[key].coerce(raw)
            except ValueError as exc:
                raise pytest.UsageError(f"--sweep-set: {exc}") from None

    # -- trials ----------------------------------------------------------------------
    def make_trial(self, source: Source, combo: Combination) -> Trial:
        if source.kind == "range":
            # every combination of a range file has the same keys and differs only in the swept
            # ones, so the rest is typed and sorted once per file (a third of make_trial's time
            # at 100,000 combinations)
            if source.shared is None:
                source.shared = self._shared(source, combo)
            base, raw_keys = source.shared
            values = base.copy()
            for key, raw in combo.swept.items():
                if key not in self.typed_overrides:
                    values[key] = source.typed[(key, raw)]
            overrides = self.overrides
            raw_cfg = {k: overrides[k] if k in overrides else combo.values[k] for k in raw_keys}
        else:
            values = dict(self._defaults)
            for key, raw in combo.values.items():
                values[key] = source.typed[(key, raw)]
            values.update(self.typed_overrides)
            raw_cfg = dict(combo.values)
            raw_cfg.update(self.overrides)
            raw_cfg = dict(sorted(raw_cfg.items()))
        sweep_seed = int(values.get("CONFIG_SEED") or 0)
        return Trial(
            name=combo.name,
            index=combo.index,
            source=combo.source,
            values=values,
            raw=raw_cfg,
            swept=dict(combo.swept),
            seed=derive_seed(sweep_seed, combo.name),
            worker=self.worker,
            group=source.group,
            overrides=dict(self.typed_overrides),
        )

    def _shared(self, source: Source, combo: Combination) -> tuple[dict[str, Any], tuple[str, ...]]:
        base = dict(self._defaults)
        for key, raw in combo.values.items():
            if key not in combo.swept:
                base[key] = source.typed[(key, raw)]
        base.update(self.typed_overrides)
        return base, tuple(sorted(set(combo.values) | set(self.overrides)))

    def describe(self, trial: Trial) -> str | None:
        """``pytest_sweep_describe_trial``, asked once per trial."""
        if "_description" not in trial.__dict__:
            trial.__dict__["_description"] = self.config.hook.pytest_sweep_describe_trial(trial=trial)
        return trial.__dict__["_description"]

    def validate(self, trial: Trial) -> str | None:
        reasons = [r for r in self.config.hook.pytest_sweep_validate_trial(trial=trial) if r]
        return "; ".join(reasons) if reasons else None

    def base_record(self, trial: Trial, nodeid: str) -> dict[str, Any]:
        return new_record(
            trial.name,
            trial.raw,
            trial.swept,
            nodeid=nodeid,
            seed=trial.seed,
            trial_dir=trial.folder,
            trainer=self.describe(trial),
            source=trial.source,
        )

    # -- running one trial (on the process that runs it) -----------------------------
    def reuse(self, item: SweepItem) -> bool:
        """``--resume``: take a finished trial's result instead of training it again."""
        if not self.resuming:
            return False
        if self._done is None:
            self._done = finished_trials(self.dir)
        doc = reusable(item.trial, self._done)
        if doc is None:
            return False
        record = self.base_record(item.trial, item.nodeid)
        record.update({k: doc.get(k) for k in METRIC_KEYS if doc.get(k) is not None})
        record.update(status="passed", reused=True, worker=self.worker, trial_dir=doc["_folder"])
        item.user_properties.append((RECORD_PROPERTY, json.dumps(record)))
        return True

    def run_item(self, item: SweepItem) -> None:
        if self.reuse(item):
            return
        trial = item.trial
        trial.dir = self.dir / trial.folder
        trial.dir.mkdir(parents=True, exist_ok=True)
        record = self.base_record(trial, item.nodeid)
        record["worker"] = self.worker
        history: list[dict[str, Any]] = []
        log = open(trial.dir / "output.log", "w", encoding="utf-8", buffering=1)
        echo = self.progress

        def write_log(message: str) -> None:
            log.write(message.rstrip("\n") + "\n")
            if echo is not None:
                echo(f"{trial.name} {message}")

        def epoch_hook(metrics: dict[str, Any]) -> bool:
            history.append({k: clean_number(v) for k, v in metrics.items()})
            answers = self.config.hook.pytest_sweep_epoch_ended(trial=trial, metrics=metrics)
            return any(bool(a) for a in answers)

        trial._log = write_log
        trial._epoch_hook = epoch_hook
        storage.write_text_atomic(trial.dir / "config.txt", render_trial_config(trial))
        write_log(f"started on {self.worker} (seed {trial.seed}) from {trial.source}")
        self.config.hook.pytest_sweep_trial_started(trial=trial)
        started = time.perf_counter()
        metrics: dict[str, Any] = {}
        try:
            with trial_timeout(self.timeout):
                trainer = self.config.hook.pytest_sweep_make_trainer(trial=trial, config=self.config)
                if trainer is None:
                    raise TrialFailed("no installed plugin provides a trainer for this trial")
                metrics = dict(trainer.run(trial) or {})
        except KeyboardInterrupt:
            record.update(status="not_run", error="interrupted")
            self._finish_trial(trial, record, history, metrics, started, log)
            raise
        except BaseException as exc:
            record.update(status="failed", error=one_line(exc))
            log.write(traceback.format_exc())
            self._finish_trial(trial, record, history, metrics, started, log)
            item.user_properties.append((RECORD_PROPERTY, json.dumps(record)))
            raise
        record["status"] = "passed"
        self._finish_trial(trial, record, history, metrics, started, log)
        item.user_properties.append((RECORD_PROPERTY, json.dumps(record)))

    def _finish_trial(
        self,
        trial: Trial,
        record: dict[str, Any],
        history: list[dict[str, Any]],
        metrics: dict[str, Any],
        started: float,
        log: Any,
    ) -> None:
        elapsed = time.perf_counter() - started
        for key in METRIC_KEYS:
            if key in metrics:
                record[key] = clean_number(metrics[key])
        if record.get("training_time") is None:
            record["training_time"] = round(elapsed, 3)
        if record.get("epochs_run") is None:
            record["epochs_run"] = len(history)
        history = metrics.get("history", history)
        doc = {
            "config_file": trial.name,
            "status": record["status"],
            "error": record["error"],
            "seed": trial.seed,
            "config": trial.raw,
            **{k: record.get(k) for k in METRIC_KEYS},
            "total_time": round(elapsed, 3),
            "epochs": [{k: clean_number(v) for k, v in e.items()} for e in history],
        }
        storage.write_json_atomic(trial.dir / "training_metrics.json", doc)  # type: ignore[operator]
        log.write(f"status: {record['status']}" + (f" ({record['error']})" if record["error"] else "") + "\n")
        log.close()
        self.config.hook.pytest_sweep_trial_finished(trial=trial, record=record)

    # -- the controller's view -------------------------------------------------------
    def index_ids(self) -> None:
        for source in self.sources:
            for combo in source.combinations:
                self._by_id.setdefault(trial_id(combo.name, combo.swept), []).append((source, combo))

    def expect_nodeid(self, nodeid: str) -> None:
        """Learn a collected sweep item from its node id alone (xdist controller)."""
        if not self._by_id:
            self.index_ids()
        tid = nodeid.rsplit("::", 1)[-1]
        matches = self._by_id.get(tid)
        if not matches:
            return
        source, combo = matches[0]
        for cand_source, cand in matches:
            if nodeid.split("::", 1)[0] in str(cand_source.path):
                source, combo = cand_source, cand
        self.expected[nodeid] = (self.make_trial(source, combo), None)

    def expect_item(self, item: SweepItem) -> None:
        self.expected[item.nodeid] = (item.trial, item.skip_reason)

    def expected_record(self, nodeid: str) -> dict[str, Any] | None:
        found = self.expected.get(nodeid)
        if found is None:
            return None
        trial, skip_reason = found
        rec = self.base_record(trial, nodeid)
        if skip_reason:
            rec.update(status="skipped", error=skip_reason)
        return rec

    def on_report(self, report: pytest.TestReport) -> None:
        before = self.records.get(report.nodeid)
        self._take_report(report)
        if self.records.get(report.nodeid) is not before and self.summary_due():
            self.write_interim_summary()  # only when a result arrived or changed

    def _take_report(self, report: pytest.TestReport) -> None:
        shipped = [v for k, v in report.user_properties if k == RECORD_PROPERTY]
        if shipped:
            self.records[report.nodeid] = json.loads(shipped[-1])
            return
        base = self.expected_record(report.nodeid)
        if base is None:
            return
        known = self.records.get(report.nodeid)
        if report.skipped and known is None:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.records[report.nodeid] = {**base, "status": "skipped", "error": reason.removeprefix("Skipped: ")}
        elif report.failed and (known is None or known["status"] != "failed"):
            text = str(report.longrepr or "")
            if "crashed" in text and "worker" in text:
                error = "worker crashed: " + _first_line_with(text, "crashed")
            else:
                error = f"{report.when} failed: " + _last_error_line(text)
            if known is not None and known["status"] == "passed":
                return  # a teardown error does not undo a trained result
            self.records[report.nodeid] = {**base, "status": "failed", "error": error}

    def finish(self, interrupted: bool) -> SweepResult | None:
        """Aggregate and hand the sweep to the reporters (controller only, once)."""
        if self.is_worker or self.finished:
            return self.result
        self.finished = True
        result = self._result("sweep interrupted" if interrupted else "not run", interrupted=interrupted)
        if result is None:
            return None
        self.result = result
        self.config.hook.pytest_sweep_finished(config=self.config, sweep=self.result)
        return self.result

    def summary_due(self) -> bool:
        return not (self.is_worker or self.finished) and time.monotonic() >= self._next_summary

    def write_interim_summary(self) -> None:
        """Hand the sweep so far to ``pytest_sweep_progress`` (the controller, while trials run)."""
        started = time.monotonic()
        result = self._result(NOT_FINISHED_YET, running=True)
        if result is None:
            return
        try:
            self.config.hook.pytest_sweep_progress(config=self.config, sweep=result)
        except Exception as exc:  # a full disk or a broken reporter must not stop the sweep
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"sweep: interim summary not written: {one_line(exc)}; "
                                    "the sweep goes on and writes the final summary at the end", yellow=True)
        now = time.monotonic()
        # an interval of 0 means after every trial, as asked; otherwise the writes may take at
        # most a tenth of the time, so a huge sweep does not spend it rewriting files
        interval = self.summary_interval
        self._next_summary = now + (max(interval, 10 * (now - started)) if interval > 0 else 0.0)

    def _result(self, not_run_error: str, *, interrupted: bool = False, running: bool = False) -> SweepResult | None:
        """Every expected trial's record, in collection order; those without a result are not run."""
        rows: list[dict[str, Any]] = []
        for nodeid in self.expected:
            rec = self.records.get(nodeid)
            if rec is None:
                rec = self.expected_record(nodeid)
                assert rec is not None
                if rec["status"] != "skipped":
                    rec.update(status="not_run", error=not_run_error)
            rows.append(rec)
        rows.extend(r for n, r in self.records.items() if n not in self.expected)
        if not rows:
            return None
        self.dir.mkdir(parents=True, exist_ok=True)
        return SweepResult(dir=self.dir, records=rows, interrupted=interrupted, running=running,
                           sources=[str(s.path) for s in self.sources])


def _first_line_with(text: str, needle: str) -> str:
    for line in text.splitlines():
        if needle in line:
            return line.strip()
    return text.strip().splitlines()[0] if text.strip() else ""


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("E "):
            return line[1:].strip()
    return lines[-1] if lines else "unknown error"


def collect_symbols(config: pytest.Config) -> SymbolTable:
    table = SymbolTable()
    for impl in config.pluginmanager.hook.pytest_sweep_declare_symbols.get_hookimpls():
        plugin_name = config.pluginmanager.get_name(impl.plugin) or impl.plugin_name
        for sym in impl.function() or ():
            if not isinstance(sym, Symbol):
                raise pytest.UsageError(f"plugin {plugin_name}: pytest_sweep_declare_symbols must return Symbol objects")
            try:
                table.add(_with_plugin(sym, plugin_name))
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
    return table


def _with_plugin(sym: Symbol, name: str) -> Symbol:
    from dataclasses import replace

    return replace(sym, plugin=name)


def render_trial_config(trial: Trial) -> str:
    """The exact config a trial ran with: every key it set (overrides included)."""
    lines = [f"# {trial.name} ({trial.source})", f"# seed {trial.seed}"]
    for key, raw in trial.raw.items():
        quoted = isinstance(trial.values.get(key), str) and raw not in ("y", "n")
        lines.append(f'{key}="{raw}"' if quoted else f"{key}={raw}")
    return "\n".join(lines) + "\n"


def terminal_echo(config: pytest.Config) -> Callable[[str], None] | None:
    """A writer that prints progress lines past output capturing (serial runs)."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capman = config.pluginmanager.getplugin("capturemanager")
    if reporter is None:
        return None
    state = {"fresh": True}

    def echo(message: str) -> None:
        def write() -> None:
            if state["fresh"]:
                reporter.ensure_newline()
                state["fresh"] = False
            reporter.write_line(f"  {message}", cyan=True)

        if capman is not None:
            with capman.global_and_fixture_disabled():
                write()
        else:
            write()

    def reset() -> None:
        state["fresh"] = True

    echo.reset = reset  # type: ignore[attr-defined]
    return echo


