"""Built-in plugins of pytest-sweep: every hook implementation of the project lives here.

Each plugin module is registered by ``pytest_sweep.entry`` (the one ``pytest11`` entry point)
under its name, and only in a sweep: ``sweep.reporters``, ``sweep.optimizers``, ``sweep.pruning``,
``sweep.gpu``, ``sweep.trainer``, ``sweep.reference``, ``sweep.schedulers``, ``sweep.ordering``
and the reporters ``sweep.importance``, ``sweep.refine``, ``sweep.plots``, ``sweep.html``,
``sweep.csv``, ``sweep.compare`` (the list is ``pytest_sweep.BUILTIN_PLUGINS``).  They use only
the hooks of :mod:`pytest_sweep.matrix.hookspecs` (and the built-in trainer's own factory hooks,
:mod:`pytest_sweep.plugins.trainer_hookspecs`), exactly as a third-party plugin would;
``-p no:sweep.reporters`` (for example) turns one off.  Their options are defined in
``options.py``, which pytest imports in every run; ``analysis.py`` and ``replicates.py`` are the
renderers' helpers, not plugins.
"""
