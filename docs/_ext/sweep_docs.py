"""Sphinx extension: the reference pages' generated parts, read from the installed code at build time.

Directives (each takes no argument), for MyST pages::

    ```{sweep-options}        every option of pytest's ``sweep`` group
    ```{sweep-ini}            every ``sweep_*`` ini value
    ```{sweep-symbols}        every config symbol, as ``pytest --sweep-symbols`` lists them
    ```{sweep-record-schema}  the fields of a sweep record (``sweep_summary.json``)
    ```{sweep-cli}            ``pytest-sweep --help`` and each subcommand's

Nothing here lists an option, a symbol or a field by hand: a new one appears in the next build,
and a record field without a meaning in ``TrialRecord`` is a build warning (an error under ``-W``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import sweep_facts
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


class _Generated(SphinxDirective):
    """Parse the Markdown that ``render(facts)`` returns in place of the directive."""

    has_content = False
    render: ClassVar[Callable[[sweep_facts.Facts], str]]

    def run(self) -> list[nodes.Node]:
        try:
            facts = sweep_facts.gather()
        except sweep_facts.FactsError as exc:
            raise self.error(str(exc)) from None
        self.check(facts)
        container = nodes.container()
        text = type(self).render(facts)
        self.state.nested_parse(StringList(text.splitlines(), source=self.get_source_info()[0]), 0, container, True)
        return list(container.children)

    def check(self, facts: sweep_facts.Facts) -> None:
        """A warning (an error under ``-W``) for what the code holds but does not document."""


class OptionsDirective(_Generated):
    render = staticmethod(sweep_facts.options_markdown)


class IniDirective(_Generated):
    render = staticmethod(sweep_facts.inis_markdown)


class SymbolsDirective(_Generated):
    render = staticmethod(sweep_facts.symbols_markdown)


class RecordSchemaDirective(_Generated):
    render = staticmethod(sweep_facts.records_markdown)

    def check(self, facts: sweep_facts.Facts) -> None:
        missing = sweep_facts.undocumented_fields(facts)
        if missing:
            logger.warning(
                "record fields without a meaning in TrialRecord: %s",
                ", ".join(missing),
                location=self.get_location(),
            )


class CliDirective(_Generated):
    render = staticmethod(sweep_facts.cli_markdown)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("sweep-options", OptionsDirective)
    app.add_directive("sweep-ini", IniDirective)
    app.add_directive("sweep-symbols", SymbolsDirective)
    app.add_directive("sweep-record-schema", RecordSchemaDirective)
    app.add_directive("sweep-cli", CliDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
