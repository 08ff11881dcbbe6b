"""`pretix-cluster bench`: the same load against a single-node baseline and the cluster.

- :mod:`.stacks`: the baseline as a :class:`~pretix_cluster.cluster.Cluster`,
  and pausing one stack (every service scaled to 0) while the other is measured;
- :mod:`.analysis`: the pure arithmetic (per-phase figures, ratios, CPU per
  purchase and per phase, the first component to saturate, the capacity model);
- :mod:`.report`: bench.json, bench.md, bench.html and the terminal tables;
- :mod:`.runner`: the sequence, each step bounded in time; :mod:`.cli`: the command.
"""
