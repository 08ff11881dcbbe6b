"""`pretix-cluster loadtest`: the real purchase flow under load, and what it proves.

Modules, one concern each:

- ``config``      the run's parameters, shared by the orchestrator and the Locust processes
- ``pretixapi``   the pretix REST client (run event, orders, quota availability)
- ``forms``       the HTML forms of a pretix page and its error texts
- ``buyer``       a browser-like buyer: one purchase step by step (cookies, CSRF, async tasks)
- ``busy``        which failures are "busy" (retried with bounded backoff) and which are final
- ``flows``       one purchase: the shop flow (browser-like) and the REST API flow
- ``ledger``      what the buyers saw, one JSON line per purchase attempt
- ``shapes``      load shapes: purchases/min targets -> concurrent buyers over time
- ``locustfile``  the Locust users and shape (runs in the Locust processes only)
- ``cpu``         CPU of the load generator vs CPU of the cluster's containers
- ``accounting``  the database vs the ledger: lost, phantom, duplicate orders, oversold quota
- ``summary``     the run's result as typed data (``summary.json``), read by bench and chaos
- ``report``      the summary from the ledger, and the HTML report (templates in ``reports``)
- ``runner``      orchestration: prepare, run Locust (headless or --ui), measure, account, report
- ``cli``         the Typer command

Only ``locustfile`` imports Locust (and thereby gevent's monkey-patching); the
orchestrator stays a plain process so its own work never blurs the generator's
CPU figures.
"""
