"""Calling a ``pytest_sweep_*`` hook through pluggy, with each plain implementation on its own.

The core needs two things pluggy's ordinary call does not give at once: a plugin's wrapper
implementations (``wrapper=True``, ``hookwrapper=True``) must run, and one failing implementation
must not hide the others (a reporter refused by a full disk must not stop the HTML report), each
failure named by its plugin.  :func:`call_each` calls the hook once through pluggy, on a copy of
its implementations: a plugin manager of its own holds, in the hook's order, every wrapper as it
is and every plain implementation as a copy that catches and records its own exception (in the
hook's order: ``tryfirst`` first, ``trylast`` last), so the wrappers run exactly once around the
whole call, those of a plugin that also has a plain implementation included.

Chosen over the alternatives: a :meth:`pluggy.PluginManager.subset_hook_caller` without the
plugins of the plain implementations (and those added back with
:meth:`pluggy.HookCaller.call_extra`) leaves out the wrapper of a plugin that also has a plain
implementation (``specname``); one ``subset_hook_caller`` call per plugin runs every wrapper once
per plain implementation; a catching wrapper of our own sees only the first exception, after
which pluggy calls no further implementation.  Only pluggy's public API is used.
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

    caller = _copy(pluginmanager, name, [impl if impl.wrapper or impl.hookwrapper else own(impl) for impl in impls])
    try:
        with warnings.catch_warnings():
            if isolate:  # an old-style wrapper's exception is reported below, by its own name
                warnings.simplefilter("ignore", pluggy.PluggyTeardownRaisedWarning)
            results: list[Any] = caller(**kwargs)
    except Exception as exc:
        if not isolate:
            raise
        wrappers = sorted({plugin_name(pluginmanager, i) for i in impls if i.wrapper or i.hookwrapper})
        failures.append((wrappers[0] if len(wrappers) == 1 else f"one of {', '.join(wrappers)}", exc))
        results = []
    return results, failures


class _Implementation:
    """One implementation of a hook, as a plugin of its own (for :class:`_Copy`)."""

    def __init__(self, name: str, function: Callable[..., object], opts: pluggy.HookimplOpts) -> None:
        setattr(self, name, function)
        self.name = name
        self.opts = opts


class _Copy(pluggy.PluginManager):
    """A plugin manager for one call: its plugins are :class:`_Implementation` objects."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        if isinstance(plugin, _Implementation) and name == plugin.name:
            return plugin.opts
        return None


def _copy(
    pluginmanager: pluggy.PluginManager, name: str, parts: list[pluggy.HookImpl | Callable[..., object]]
) -> pluggy.HookCaller:
    """The hook ``name`` of a new plugin manager with the spec of ``pluginmanager``'s and, in the same
    order, its implementations: each ``parts`` entry is the implementation itself (a wrapper) or
    what stands in for the one at its place (a catching copy, with the original's options)."""
    original = getattr(pluginmanager.hook, name)
    copy = _Copy(pluginmanager.project_name)
    if original.spec is not None:
        copy.add_hookspecs(original.spec.namespace)
    impls = original.get_hookimpls()
    # pluggy inserts a trylast implementation before every other one of its kind: register those last-first
    order = [i for i in reversed(range(len(impls))) if impls[i].trylast] + [
        i for i in range(len(impls)) if not impls[i].trylast
    ]
    for i in order:
        part = parts[i]
        function = part.function if isinstance(part, pluggy.HookImpl) else part
        copy.register(_Implementation(name, function, impls[i].opts), str(i))
    caller: pluggy.HookCaller = getattr(copy.hook, name)
    return caller
