"""The sweep's sources, shared by every role: range files and config folders, parsed and typed.

Built once per process at configure time (so a mistake is a usage error before anything runs);
the collector, the runner and the controller all make their trials here, so the same range file
gives the same trials, names and seeds on every process.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pluggy
import pytest

from pytest_sweep.matrix.errors import RangeConfigError, clip
from pytest_sweep.matrix.generate import read_config_dir
from pytest_sweep.matrix.grid import Combination, expand
from pytest_sweep.matrix.hookcall import call_each, plugin_name
from pytest_sweep.matrix.options import sweep_options
from pytest_sweep.matrix.rangeconfig import RangeConfig, Rewritten, parse_file, quoted_keys, resolve_not_set
from pytest_sweep.matrix.records import TrialRecord
from pytest_sweep.matrix.space import SEED_KEY, SearchSpace
from pytest_sweep.matrix.symbols import Symbol, SymbolTable
from pytest_sweep.matrix.trial import Trial, TrialFailed, trial_id, unstaged_id

#: ``pytest_sweep_describe_trial``'s answer, asked once per trial.
_DESCRIPTION = pytest.StashKey[str | None]()


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
    #: lines a plugin's rewrite asked to show once for this file (``pytest_sweep_rewrite_range_config``)
    notes: tuple[str, ...] = ()
    #: the path as the user wrote it (notes name the file so)
    display: str = ""
    #: a sampled search (``--sweep-search``): its space; ``combinations`` are then the items
    #: ``trial_001 ...`` (per seed), whose swept values are drawn when each starts
    space: SearchSpace | None = None
    #: a sampled search: the source its drawn trials are typed and made from
    full: Source | None = None


def collect_symbols(config: pytest.Config) -> SymbolTable:
    """Every plugin's ``pytest_sweep_declare_symbols``, each symbol tagged with its plugin's name."""
    return declared_symbols(config.pluginmanager)


def declared_symbols(pm: pluggy.PluginManager) -> SymbolTable:
    """Every ``pytest_sweep_declare_symbols`` of the plugins ``pm`` holds, each symbol tagged with its plugin's name.

    Called through pluggy (:func:`~pytest_sweep.matrix.hookcall.call_each`), so a plugin's wrapper
    runs around it and may change the lists; a symbol a wrapper adds is tagged with its name."""

    def tagged(who: str, declared: Any) -> list[Symbol]:
        return [replace(sym, plugin=who) for sym in _symbols(who, declared)]

    answers, _ = call_each(pm, "pytest_sweep_declare_symbols", {}, isolate=False, answer=tagged)
    wrappers = [i for i in pm.hook.pytest_sweep_declare_symbols.get_hookimpls() if i.wrapper or i.hookwrapper]
    by_wrapper = ", ".join(plugin_name(pm, i) for i in wrappers) or "?"
    if not isinstance(answers, list):
        raise pytest.UsageError(f"plugin {by_wrapper}: a pytest_sweep_declare_symbols wrapper must return a list")
    table = SymbolTable()
    for declared in reversed(answers):  # the hook's order reversed: trylast first, as before
        for sym in _symbols(by_wrapper, declared):
            try:
                table.add(sym if sym.plugin else replace(sym, plugin=by_wrapper))
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
    return table


def _symbols(who: str, declared: Any) -> list[Symbol]:
    """One plugin's answer to ``pytest_sweep_declare_symbols``, checked."""
    if declared is None:
        return []
    if not isinstance(declared, (list, tuple)):
        raise pytest.UsageError(f"plugin {who}: pytest_sweep_declare_symbols must return a list of Symbol")
    if not all(isinstance(sym, Symbol) for sym in declared):
        raise pytest.UsageError(f"plugin {who}: pytest_sweep_declare_symbols must return Symbol objects")
    return list(declared)


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


def _resolve(flag: str, raw: str, base: Path) -> Path:
    """``raw`` as an absolute path; a symlink loop or an empty name is a usage error."""
    if not raw.strip():
        raise pytest.UsageError(f"{flag}=: empty path; give a file or folder")
    try:
        return (base / raw).resolve()
    except (OSError, RuntimeError) as exc:  # "Symlink loop from ..."
        raise pytest.UsageError(f"{flag}={clip(raw)}: cannot resolve the path ({exc}); check the link") from None


def _check_name(flag: str, raw: str, path: Path) -> None:
    """A name with ``::`` or ``[`` would be read by pytest as part of a test id: refuse it."""
    for bad in ("::", "[", "]"):
        if bad in path.name:
            raise pytest.UsageError(
                f"{flag}={clip(raw)}: the name contains {bad!r}, which pytest reads as part of a test id; "
                "rename the file or folder"
            )


class Sources:
    """The parsed sources of one run, the declared symbols and the command-line overrides."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.worker: str = config.workerinput["workerid"] if hasattr(config, "workerinput") else "main"
        self.symbols = collect_symbols(config)
        self._defaults = self.symbols.defaults()
        self.options = sweep_options(config)
        self.overrides = dict(self.options.overrides)
        self.limit = self.options.max_combinations
        self.search = self.options.search
        self.sources = self._load()
        self.typed_overrides = self._type_overrides()
        self._by_id: dict[str, list[tuple[Source, Combination]]] = {}

    # -- parsing (configure time, so that mistakes are usage errors) ----------------
    def _load(self) -> list[Source]:
        cfg = self.config
        sources: list[Source] = []
        base = cfg.invocation_params.dir
        for raw in self.options.range_config:
            path = _resolve("--range-config", raw, base)
            _suggest_defconfig(raw, path, cfg.rootpath)
            _check_name("--range-config", raw, path)
            if path.exists() and not path.is_file():
                raise pytest.UsageError(
                    f"--range-config={clip(raw)}: not a regular file (a folder, FIFO or device); "
                    "pass a range config file (generated folders go to --config-dir)"
                )
            try:
                rc = parse_file(path if path.exists() else raw)
                rc, notes = self._rewrite(rc)
                if self.search.sampled:
                    sources.append(self._sampled_source(path, rc, notes, raw))
                    continue
                combos = expand(rc, limit=self.limit)
            except RangeConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
            sources.append(Source(path, "range", combos, rc, notes=notes, display=raw))
        if self.search.sampled and (self.options.config_dir or len(sources) != 1):
            raise pytest.UsageError(
                f"--sweep-search={self.search.search} samples one range config: give exactly one --range-config "
                "(and no --config-dir)"
            )
        for raw in self.options.config_dir:
            path = _resolve("--config-dir", raw, base)
            _check_name("--config-dir", raw, path)
            try:
                combos = read_config_dir(path if path.exists() else raw)
            except RangeConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
            if len(combos) > self.limit:
                raise pytest.UsageError(
                    f"{raw}: {len(combos)} configs exceed the limit of {self.limit}; "
                    f"raise it with --sweep-max-combinations={len(combos)}"
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

    def _sampled_source(self, path: Path, rc: RangeConfig, notes: tuple[str, ...], raw: str) -> Source:
        """A sampled search's source: its space, and one placeholder item per trial (and seed)."""
        flag = f"--sweep-search={self.search.search}"
        if rc.runs:
            raise pytest.UsageError(
                f"{raw}: {flag} cannot sample a config that lists its runs (a reference defconfig); "
                "run it as a grid or write a range config of the keys to search"
            )
        space = SearchSpace.from_range(rc, continuous=self.search.continuous)
        if not space.dims:
            raise pytest.UsageError(
                f"{raw}: {flag} has nothing to search: no key other than CONFIG_SEED takes several values; "
                "give the keys to search as choices (a|b|c) or ranges (a:s:b)"
            )
        trials = self.search.trials or 1
        seeds = space.seeds or ("",)
        if trials * len(seeds) > self.limit:
            raise pytest.UsageError(
                f"--sweep-trials={trials}: {trials * len(seeds)} items exceed the limit of {self.limit}; "
                f"give fewer trials or raise the limit with --sweep-max-combinations={trials * len(seeds)}"
            )
        searched = {d.key for d in space.dims}
        ordered = sorted(rc.params, key=lambda p: p.key)
        lines = {p.key: p.line for p in ordered}
        quoted = frozenset(quoted_keys(rc))
        template = {p.key: p.values[0] for p in ordered if p.key not in searched}
        width = max(3, len(str(trials)))
        combos = []
        for index in range(1, trials + 1):
            for seed in seeds:
                values = dict(template)
                swept = {}
                if seed:
                    values[SEED_KEY] = swept[SEED_KEY] = seed
                combos.append(
                    Combination(
                        index=index,
                        name=f"trial_{index:0{width}d}",
                        values=values,
                        swept=swept,
                        lines=lines,
                        source=rc.path,
                        quoted=quoted,
                    )
                )
        full = Source(path, "range", [], rc, display=raw)
        for param in rc.params:  # every value the sampler may pick is typed (checked) now
            for value in param.values:
                full.typed[(param.key, value)] = self._coerce(param.key, value, rc.path, param.line)
        return Source(path, "range", combos, rc, notes=notes, display=raw, space=space, full=full)

    def _coerce(self, key: str, raw: str, path: str, line: int) -> Any:
        try:
            return self.symbols.coerce(key, raw, path, line)
        except RangeConfigError as exc:
            exc.line = line or None
            raise pytest.UsageError(str(exc)) from None

    def sampled_trial(self, source: Source, slot: Trial, raw: dict[str, str]) -> Trial:
        """The trial of item ``slot`` with the sampler's values ``raw`` (TrialFailed: a value its symbol refuses)."""
        full = source.full
        assert full is not None and full.rc is not None
        placeholder = next(c for c in source.combinations if c.name == slot.name and c.swept == slot.swept)
        for key, value in raw.items():
            if (key, value) not in full.typed:
                try:
                    full.typed[(key, value)] = self.symbols.coerce(
                        key, value, full.rc.path, placeholder.lines.get(key, 0)
                    )
                except RangeConfigError as exc:
                    raise TrialFailed(f"the sampler's value {key}={value} is refused: {exc.message}") from None
        swept = dict(sorted({**raw, **placeholder.swept}.items()))
        combo = Combination(
            index=placeholder.index,
            name=placeholder.name,
            values=dict(sorted({**placeholder.values, **raw}.items())),
            swept=swept,
            lines=placeholder.lines,
            source=placeholder.source,
            quoted=placeholder.quoted,
        )
        return self.make_trial(full, combo)

    def _rewrite(self, rc: RangeConfig) -> tuple[RangeConfig, tuple[str, ...]]:
        """Every key known (all unknown ones named at once), ``is not set`` resolved, then a
        plugin's rewrite (``pytest_sweep_rewrite_range_config``), if one recognises the file."""
        self.symbols.check_all_known(((p.key, p.line) for p in rc.params), rc.path)
        rc = resolve_not_set(rc, lambda key: self.symbols[key].type == "bool")
        rewritten: Rewritten | None = self.config.hook.pytest_sweep_rewrite_range_config(rc=rc, symbols=self.symbols)
        if rewritten is None:
            return rc, ()
        new = rewritten.config
        self.symbols.check_all_known(((p.key, p.line) for p in new.params), new.path)
        return new, tuple(rewritten.notes)

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
                    raise pytest.UsageError(str(exc)) from None

    def _type_overrides(self) -> dict[str, Any]:
        typed: dict[str, Any] = {}
        for key, raw in self.overrides.items():
            if key not in self.symbols:
                raise pytest.UsageError(
                    f"--sweep-set {clip(key)}={clip(raw)}: {clip(key)} is not a known symbol{self.symbols.suggest(key)} "
                    "(pytest --sweep-symbols lists them)"
                )
            try:
                typed[key] = self.symbols[key].coerce(raw)
            except ValueError as exc:
                raise pytest.UsageError(f"--sweep-set: {clip(str(exc))}") from None
        return typed

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
        return Trial(
            name=combo.name,
            index=combo.index,
            source=combo.source,
            values=values,
            raw=raw_cfg,
            swept=dict(combo.swept),
            seed=int(values.get("CONFIG_SEED") or 0),  # every trial: CONFIG_SEED itself
            worker=self.worker,
            group=source.group,
            overrides=dict(self.typed_overrides),
            label=combo.label,
        )

    def _shared(self, source: Source, combo: Combination) -> tuple[dict[str, Any], tuple[str, ...]]:
        base = dict(self._defaults)
        for key, raw in combo.values.items():
            if key not in combo.swept:
                base[key] = source.typed[(key, raw)]
        base.update(self.typed_overrides)
        return base, tuple(sorted(set(combo.values) | set(self.overrides)))

    def trial_for_nodeid(self, nodeid: str) -> Trial | None:
        """The trial behind a collected node id (the xdist controller sees ids only)."""
        if not self._by_id:
            for source in self.sources:
                for combo in source.combinations:
                    self._by_id.setdefault(trial_id(combo.name, combo.swept, combo.label), []).append((source, combo))
        last = nodeid.rsplit("::", 1)[-1]
        matches = self._by_id.get(last) or self._by_id.get(unstaged_id(last))
        if not matches:
            return None
        source, combo = matches[0]
        for cand_source, cand in matches:
            if nodeid.split("::", 1)[0] in str(cand_source.path):
                source, combo = cand_source, cand
        return self.make_trial(source, combo)

    def describe(self, trial: Trial) -> str | None:
        """``pytest_sweep_describe_trial``, asked once per trial."""
        if _DESCRIPTION not in trial.stash:
            trial.stash[_DESCRIPTION] = self.config.hook.pytest_sweep_describe_trial(trial=trial, config=self.config)
        return trial.stash[_DESCRIPTION]

    def validate(self, trial: Trial) -> str | None:
        """Every plugin's ``pytest_sweep_validate_trial`` reason, joined; None to run the trial."""
        reasons = [r for r in self.config.hook.pytest_sweep_validate_trial(trial=trial) if r]
        return "; ".join(reasons) if reasons else None

    def base_record(self, trial: Trial, nodeid: str) -> dict[str, Any]:
        """The record of a trial before it ran (the runner and the controller start from it)."""
        return TrialRecord.new(
            trial.name,
            trial.raw,
            trial.swept,
            nodeid=nodeid,
            seed=trial.seed,
            trial_dir=trial.folder,
            trainer=self.describe(trial),
            source=trial.source,
        ).to_json()


SOURCES_KEY = pytest.StashKey[Sources]()
