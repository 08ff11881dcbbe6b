"""CPU of one running stack per component, and of the host, over a quiet window.

    .venv/bin/python scripts/idle-cpu.py [--stack pretix] [--seconds 60]

What the cluster costs when nobody buys: its containers' cgroup counters
(the bench's own reader, loadtest/cpu.py) and the host's busy cores from
/proc/stat; "outside" is the host minus the stack's containers (dockerd,
containerd and runc for every `docker exec` health check, the kernel). Run it
with nothing else on the machine: everything else counts as outside.
"""

from __future__ import annotations

import argparse
import time

import docker

from pretix_cluster.loadtest.cpu import ClusterCpu, host_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="pretix")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    stack = ClusterCpu(docker.from_env(), args.stack)
    stack.sample()
    busy_before, _ = host_cpu()
    start = time.time()
    time.sleep(args.seconds)
    stack.sample()
    busy_after, _ = host_cpu()
    elapsed = time.time() - start
    host_cores = (busy_after - busy_before) / elapsed  # CPU-seconds of all cores per second
    cores = {name: seconds / elapsed for name, seconds in stack.by_component().items()}
    for name, used in sorted(cores.items(), key=lambda item: -item[1]):
        print(f"{name:10s} {used:.3f}")
    inside = sum(cores.values())
    print(f"containers {inside:.3f}  host {host_cores:.3f}  outside {host_cores - inside:.3f}")


if __name__ == "__main__":
    main()
