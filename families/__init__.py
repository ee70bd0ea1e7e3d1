"""Model families neurodeploy deploys end to end (installed as ``neurodeploy.families``).

Each family is a subpackage holding a reference model that *is* an IR graph, its training on the host, and the
scripts that compile it to every target: :mod:`neurodeploy.families.lsm` (liquid state machines).
"""
