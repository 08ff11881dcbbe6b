"""The lab: several Docker "machines" (nested daemons) on this one, as a swarm of managers.

Exposure, all of it on the lab's own bridge network (172.30.x.0/24 unless
`--subnet`), which only this machine routes:
  - each node's Docker API, plain TCP at <node ip>:2375, accepted only from the
    bridge's gateway, i.e. from this host (the node's firewall drops it from
    other nodes and from containers running in the lab; see node-image/entrypoint.sh);
  - the registry, plain HTTP without authentication, at <registry ip>:5000 and
    on a random port of the host's loopback (for the host daemon's pushes);
  - Swarm's own ports between nodes (2377, 7946, 4789).
Nothing is published on the host's external interfaces.

Public names for other modules:
  control.up / down / status / kill_node / start_node / push_images   (the lab's life)
  control.LabSpec, control.LabStatus, control.LabNode, membership.SwarmNode (typed results)
  registry.push_images, registry.Registry                                  (images to every node)
  nodes.NODE_SHARED_DIR                      (where `lab up --shared-dir` appears in nodes)
"""
