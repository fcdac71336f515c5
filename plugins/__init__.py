"""Built-in plugins of pytest-sweep: every hook implementation of the project lives here.

Each module is a pytest plugin registered through its own ``pytest11`` entry point
(``sweep.reporters``, ``sweep.optimizers``, ``sweep.pruning``, ``sweep.gpu``, ``sweep.trainer``,
``sweep.reference``,
and the reporters ``sweep.importance``, ``sweep.refine``, ``sweep.plots``, ``sweep.html``,
``sweep.csv``, ``sweep.compare``) and uses only the hooks of :mod:`pytest_sweep.matrix.hookspecs`,
exactly as a third-party plugin would; ``-p no:sweep.reporters`` (for example) turns one off.
``analysis.py`` and ``replicates.py`` are the renderers' helpers, not plugins.
"""
