"""The lab: several Docker "machines" (nested daemons) on this one, as a swarm of managers.

Public names for other modules:
  control.up / down / status / kill_node / start_node / docker_host  (the lab's life)
  control.LabSpec, control.LabStatus, control.LabNode                (typed results)
  control.push_images / registry.push_images                        (images to every node)
  nodes.NODE_SHARED_DIR                       (where `lab up --shared-dir` appears in nodes)
"""
