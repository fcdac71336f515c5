"""Calling a ``pytest_sweep_*`` hook through pluggy, with each plain implementation on its own.

The core needs two things pluggy's ordinary call does not give at once: a plugin's wrapper
implementations (``wrapper=True``, ``hookwrapper=True``) must run, and one failing implementation
must not hide the others (a reporter refused by a full disk must not stop the HTML report), each
failure named by its plugin.  :func:`call_each` calls the hook once through pluggy: the wrappers
(kept with :meth:`pluggy.PluginManager.subset_hook_caller`, which leaves out every plugin with a
plain implementation) run exactly once around the whole call, and each plain implementation takes
part through :meth:`pluggy.HookCaller.call_extra` as a copy that catches and records its own
exception (in the hook's order: ``tryfirst`` first, ``trylast`` last).

Chosen over the two alternatives: one ``subset_hook_caller`` call per plugin runs every wrapper
once per plain implementation; a catching wrapper of our own sees only the first exception, after
which pluggy calls no further implementation.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import pluggy


def plugin_name(pluginmanager: pluggy.PluginManager, impl: pluggy.HookImpl) -> str:
    """The name a plugin is registered under (``sweep.html``, a conftest's path)."""
    return pluginmanager.get_name(impl.plugin) or impl.plugin_name


def call_each(
    pluginmanager: pluggy.PluginManager,
    name: str,
    kwargs: dict[str, Any],
    *,
    isolate: bool,
    answer: Callable[[str, Any], Any] | None = None,
) -> tuple[list[Any], list[tuple[str, Exception]]]:
    """Call the hook ``name`` once, wrappers included; returns its result and the failures.

    :param isolate: a plain implementation's exception is recorded as ``(plugin name, exception)``
        and the others still run; so is one raised by a wrapper (named by the wrappers' plugins).
        Without it every exception goes through the wrappers to the caller, as pluggy does.
    :param answer: turns each plain implementation's answer into what the hook returns, given
        the plugin's name (check it, tag it), inside that implementation's call.
    """
    impls = getattr(pluginmanager.hook, name).get_hookimpls()
    plain = [impl for impl in impls if not (impl.wrapper or impl.hookwrapper)]
    failures: list[tuple[str, Exception]] = []

    def own(impl: pluggy.HookImpl) -> Callable[..., object]:
        who = plugin_name(pluginmanager, impl)

        @functools.wraps(impl.function)  # pluggy reads the argument names through __wrapped__
        def call(*args: object) -> object:
            try:
                result = impl.function(*args)
                return result if answer is None else answer(who, result)
            except Exception as exc:
                if not isolate:
                    raise
                failures.append((who, exc))
                return None

        return call

    caller = pluginmanager.subset_hook_caller(name, remove_plugins=[impl.plugin for impl in plain])
    try:
        with warnings.catch_warnings():
            if isolate:  # an old-style wrapper's exception is reported below, by its own name
                warnings.simplefilter("ignore", pluggy.PluggyTeardownRaisedWarning)
            results: list[Any] = caller.call_extra([own(impl) for impl in plain], kwargs)
    except Exception as exc:
        if not isolate:
            raise
        wrappers = sorted({plugin_name(pluginmanager, i) for i in impls if i.wrapper or i.hookwrapper})
        failures.append((wrappers[0] if len(wrappers) == 1 else f"one of {', '.join(wrappers)}", exc))
        results = []
    return results, failures
