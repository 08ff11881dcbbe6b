"""Chaos scenarios: faults injected under a purchase load, and proof that no order is lost.

One module per concern: :mod:`faults` (how to break things), :mod:`scenarios`
(what to break, chosen from the live cluster), :mod:`observe` (what the
cluster itself sees), :mod:`analysis` (the figures, pure), :mod:`runner`
(one scenario end to end), :mod:`report` (JSON and HTML), :mod:`cli`.
"""
