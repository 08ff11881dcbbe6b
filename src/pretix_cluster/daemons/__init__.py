"""One module per daemon of the cluster, after Patroni's own ``dcs/`` layout.

Each module owns what the rest of the tool knows about its daemon:

- ``config_context``: the values its Jinja2 template (render/templates/) needs;
- its probe: the command run inside one of its containers, and the parse of
  the answer into
- a typed, frozen state (``patroni.ClusterView``, ``redis.SentinelView``, ...),
  built by ``from_*`` parsers that tests feed with recorded real outputs.

These modules never reach Docker themselves (render imports them, and the
engine imports render): a probe gets a callable that runs its command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Exec = Callable[[Sequence[str], Sequence[str], float], "str | None"]
"""``exec(services, command, timeout)``: run ``command`` in the first running container of
the services (short names, in the order given) that answers with exit code 0 within
``timeout`` seconds; its output, or None when none does."""

Run = Callable[[Sequence[str], float], "str | None"]
"""``run(command, timeout)``: the same in one given container (each HAProxy has its view)."""
