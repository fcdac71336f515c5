"""Every sweep folder gets ``environment.json`` (:mod:`pytest_sweep.matrix.environment`).

The controller writes it when the session starts (a serial run, the xdist or Ray controller;
never a worker or an actor), so the code under test, the versions, the machine, the command line
and the resolved options are on record before the first trial trains.  ``--collect-only`` writes
nothing.  The HTML report shows it in a collapsed section, and ``--sweep-compare`` warns when two
sweeps ran on different torch, CUDA, cuDNN, driver or GPUs.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import environment, files
from pytest_sweep.matrix.controller import CONTROLLER_KEY
from pytest_sweep.matrix.options import recorded_options
from pytest_sweep.matrix.runner import one_line
from pytest_sweep.matrix.sources import SOURCES_KEY


def write_environment(config: pytest.Config, sweep_dir: Path) -> dict[str, Any]:
    sources = config.stash[SOURCES_KEY]
    opts = sources.options
    env = environment.gather(
        rootdir=config.rootpath,
        sweep_dir=sweep_dir,
        invocation_dir=config.invocation_params.dir,
        args=[str(a) for a in config.invocation_params.args],
        options=recorded_options(config),
        resolved=opts.resolved(),
        sources=[environment.describe_source(s.path, s.kind, s.display) for s in sources.sources],
        exclude=[opts.output_root, sweep_dir],
    )
    environment.write(sweep_dir, env)
    return env


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """First thing on the controller: the trackers (``--sweep-mlflow``) read it when they start."""
    config = session.config
    controller = config.stash.get(CONTROLLER_KEY, None)
    if controller is None or hasattr(config, "workerinput") or config.option.collectonly:
        return
    try:
        write_environment(config, controller.dir)
    except Exception as exc:  # a record of the environment must never cost the sweep
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"sweep: {files.ENVIRONMENT_JSON} not written: {one_line(exc)}", yellow=True)


# -- readers: the HTML report and --sweep-compare ---------------------------------------------------


def html_section(sweep_dir: Path) -> list[str]:
    """A collapsed ``<details>`` section with the sweep's environment (nothing without a readable one)."""
    env, why = environment.load(sweep_dir)
    if env is None:
        return ["<h2>Environment</h2>", f"<p>{html.escape(str(why))}</p>"]
    try:
        return _html_section(env)
    except (TypeError, AttributeError, ValueError):  # a file this tool did not write (`pytest-sweep report`)
        why = f"{files.ENVIRONMENT_JSON} is not readable (not the fields pytest-sweep writes)"
        return ["<h2>Environment</h2>", f"<p>{html.escape(why)}</p>"]


def _html_section(env: dict[str, Any]) -> list[str]:
    e = html.escape
    rows = [
        ("code", environment.code_line(env).removeprefix("code: ")),
        ("command", " ".join(map(str, (env.get("command") or {}).get("argv") or []))),
        ("folder", str((env.get("command") or {}).get("invocation_dir") or "")),
        ("pytest-sweep", str((env.get("pytest_sweep") or {}).get("version"))),
        ("Python", str((env.get("python") or {}).get("version"))),
    ]
    rows += [(k, v) for k, v in environment.key_facts(env).items() if v is not None]
    host = env.get("host") or {}
    rows.append(
        ("host", f"{host.get('hostname')} ({host.get('system')} {host.get('machine')}, {host.get('cpu_count')} CPUs)")
    )
    rows += [(f"${k}", str(v)) for k, v in sorted((env.get("env") or {}).items())]
    table = "".join(f"<tr><th>{e(k)}</th><td><code>{e(v)}</code></td></tr>" for k, v in rows)
    pkgs = env.get("packages") or {}
    packages = "".join(f"<li>{e(str(k))} {e(str(v))}</li>" for k, v in pkgs.items())
    resolved = e(json.dumps(env.get("resolved") or {}, indent=1, sort_keys=True))
    return [
        "<h2>Environment</h2>",
        f'<details id="environment"><summary>{e(environment.summary_line(env))}</summary>',
        f"<table>{table}</table>",
        f"<details><summary>resolved options</summary><pre>{resolved}</pre></details>",
        f"<details><summary>installed packages ({len(pkgs)})</summary><ul>{packages}</ul></details>",
        f'<p>All of it: <a href="{files.ENVIRONMENT_JSON}">{files.ENVIRONMENT_JSON}</a>'
        + (
            f', the uncommitted changes: <a href="{files.ENVIRONMENT_DIFF}">{files.ENVIRONMENT_DIFF}</a>'
            if (env.get("code") or {}).get("diff")
            else ""
        )
        + ".</p></details>",
    ]


def compare_lines(baseline_dir: Path, current_dir: Path) -> list[str]:
    """A warning when the two sweeps ran on different torch/CUDA/cuDNN/driver/GPUs (else nothing)."""
    before, _ = environment.load(baseline_dir)
    after, _ = environment.load(current_dir)
    if before is None or after is None:
        return []
    changed = environment.differences(before, after)
    if not changed:
        return []
    return [
        "WARNING: the environments differ (" + "; ".join(changed) + "): part of any change may come from "
        f"them, not from the code (see {files.ENVIRONMENT_JSON} in both folders)"
    ]
