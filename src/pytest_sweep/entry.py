"""The ``pytest11`` entry point ``sweep``: light at start-up, inert unless a sweep is asked for.

Every pytest run in an environment where pytest-sweep is installed imports this module, so it
imports only what pytest needs before it knows whether a sweep is active: the option definitions
(:mod:`pytest_sweep.matrix.options`, :mod:`pytest_sweep.plugins.options`; ``--help`` lists them
all) and the hookspecs (the core's :mod:`pytest_sweep.matrix.hookspecs` and the built-in trainer's
:mod:`pytest_sweep.plugins.trainer_hookspecs`, added in ``pytest_addhooks`` as pytest-xdist adds
its ``newhooks``, so a ``conftest.py`` or an installed plugin that implements ``pytest_sweep_*``
hooks validates in any run, also one where ``sweep.trainer`` is off).

A sweep is active when ``--range-config``, ``--config-dir``, ``--sweep-generate`` or
``--sweep-symbols`` is given.  Then, and only then, the built-in plugins
(:data:`pytest_sweep.BUILTIN_PLUGINS`) are imported and registered under their own names
(``sweep.core``, ``sweep.html``, ...), so ``-p no:sweep.html`` still turns one off.  That happens
in ``pytest_load_initial_conftests``: the command line is parsed (``early_config.known_args_namespace``)
and no ``conftest.py`` is loaded yet, so the plugins register before the user's conftests, as
entry points did, and before ``pytest_cmdline_main`` (``--sweep-generate``, ``--sweep-symbols``).
In a run without a sweep nothing else is imported, registered or changed.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from pytest_sweep import BUILTIN_PLUGINS
from pytest_sweep.matrix import hookspecs
from pytest_sweep.matrix import options as core_options
from pytest_sweep.matrix.options import SWEEP_OPTIONS, sweep_requested
from pytest_sweep.plugins import options as plugin_options
from pytest_sweep.plugins import trainer_hookspecs

#: The core's registration name: a sweep cannot run without it.
CORE = "sweep.core"


def pytest_addoption(parser: pytest.Parser) -> None:
    core_options.addoption(parser)
    plugin_options.addoption(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    pluginmanager.add_hookspecs(trainer_hookspecs)


def register_builtins(pluginmanager: pytest.PytestPluginManager) -> list[str]:
    """Import and register every built-in plugin not blocked (``-p no:NAME``) nor registered yet.

    A plugin module already registered under another name (given with ``-p MODULE``) is left as
    it is.  Returns the names registered now.
    """
    registered = []
    for name, module_name in BUILTIN_PLUGINS.items():
        if pluginmanager.is_blocked(name) or pluginmanager.has_plugin(name):
            continue
        module = importlib.import_module(module_name)
        if pluginmanager.is_registered(module):
            continue
        if pluginmanager.register(module, name) is not None:
            registered.append(name)
    return registered


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    if sweep_requested(early_config.known_args_namespace):
        register_builtins(early_config.pluginmanager)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | pytest.ExitCode | None:
    """A late start (this module came with a ``conftest.py``'s ``pytest_plugins``): register now.

    pytest has already begun calling ``pytest_cmdline_main`` then, so the core's implementation,
    registered just now, is called from here.
    """
    if not sweep_requested(config.option) or CORE not in register_builtins(config.pluginmanager):
        return None
    core: Any = config.pluginmanager.get_plugin(CORE)
    result: int | pytest.ExitCode | None = core.pytest_cmdline_main(config)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sweep: a trial of a hyperparameter sweep (added by pytest-sweep)")
    if not sweep_requested(config.option):
        return
    if config.pluginmanager.is_blocked(CORE):
        given = next(f"--{dest.replace('_', '-')}" for dest in SWEEP_OPTIONS if getattr(config.option, dest, None))
        raise pytest.UsageError(
            f"{given} needs the plugin {CORE}, which -p no:{CORE} turned off; drop one of the two "
            "(-p no:sweep turns pytest-sweep off entirely)"
        )
    register_builtins(config.pluginmanager)  # a late start without pytest_cmdline_main (pytester's parseconfigure)
    core_options.sweep_options(config)  # read once, before any plugin acts: a bad value is a usage error now
