"""Built-in plugins of pytest-sweep.

Each module is a pytest plugin registered through its own ``pytest11`` entry point and
uses only the hooks of :mod:`matrix.hookspecs`, exactly as a third-party plugin would;
``-p no:plugins.reporters`` (for example) turns one off.
"""
