"""The HTML reports: data objects rendered by Jinja2 templates with one shared layout.

``templates/layout.html.j2`` holds the page (head, CSS, header, footer) that
the load-test, chaos and bench reports extend; ``charts.html.j2`` draws the
charts :mod:`.svgplot` lays out, and the tables. Autoescaping is on: every
string from a run (event names, error messages, scenario titles) is text.
"""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


def percent(share: float) -> str:
    """0.0123 -> '1.23 %'."""
    return f"{share * 100:.2f} %"


def dash(value: Any) -> Any:
    """A figure, or a dash where there is none."""
    return "—" if value is None else value


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("pretix_cluster.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters |= {"pct": percent, "dash": dash}
    return env


def render(template: str, **context: Any) -> str:
    """``template`` (a file in templates/) filled with ``context``."""
    return environment().get_template(template).render(**context)
