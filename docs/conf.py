"""Sphinx configuration of pytest-sweep's documentation (``make docs``).

Sphinx with MyST-Parser, as pytest and pytest-xdist document themselves: the pages are Markdown,
the reference is generated from the installed code (``_ext/sweep_docs.py``, autodoc), and the
build runs offline with warnings as errors (``sphinx-build -W --keep-going -n``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import pkgutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "pytest-sweep"
author = "the pytest-sweep developers"
copyright = "the pytest-sweep developers (MIT)"
try:
    release = importlib.metadata.version("pytest-sweep")
except importlib.metadata.PackageNotFoundError:
    raise RuntimeError(
        "the docs are generated from the installed code: install the checkout first "
        "(make docs does; or pip install -e '.[docs]')"
    ) from None
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc", "sweep_docs"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "examples/**/README.md"]

# MyST: Markdown pages; `#anchor` links to headings of levels 1-3 resolve.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# autodoc: the hookspecs and the public classes, in source order.
autodoc_member_order = "bysource"
add_module_names = False


def _run_type_checking_imports(package: str, *modules: str) -> None:
    """Run the ``if TYPE_CHECKING:`` imports of every module of ``package`` (and of ``modules``) in that module.

    The modules annotate with ``from __future__ import annotations`` and import the types they
    name only for type checkers; with the names bound, autodoc resolves the annotations to the
    real classes and links them (sphinx-autodoc-typehints does the same).
    """
    names = [info.name for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + ".")]
    for name in [*names, *modules]:
        try:
            module = importlib.import_module(name)
        except ImportError:  # needs an optional dependency (ray.pool: Ray); none of these is documented
            continue
        tree = ast.parse(inspect.getsource(module))
        for node in tree.body:
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                for stmt in node.body:
                    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                        try:
                            exec(compile(ast.Module([stmt], []), name, "exec"), module.__dict__)
                        except ImportError:  # an optional dependency (Ray): the annotation stays a name
                            pass


_run_type_checking_imports("pytest_sweep.matrix", "pytest_sweep.plugins.trainer_hookspecs")

# Nitpicky (-n): every cross-reference must resolve.  The build is offline (no intersphinx), so
# references into pytest, pluggy, torch and the standard library cannot; they are listed here.
nitpick_ignore_regex = [
    (r"py:.*", r"(pytest|_pytest|pluggy|torch|argparse|pathlib|typing|collections\.abc|dataclasses)(\..*)?"),
    (r"py:class", r"(Path|Any|Sized|Mapping|Callable|Iterable|Iterator|Sequence|Generator|Config|Item|Stash)"),
    (r"py:class", r"(int|float|str|bool|dict|list|tuple|set|object|None|Exception|ValueError|type)"),
]

html_theme = "furo"
html_title = f"pytest-sweep {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
# "--sweep-resume" in help text and prose must stay two hyphens, not an en dash
smartquotes = False
