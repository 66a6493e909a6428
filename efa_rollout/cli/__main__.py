"""`python -m efa_rollout.cli` (how `efa up` starts its children with the same interpreter)."""

from efa_rollout.cli import main

main()
