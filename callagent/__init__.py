"""``callagent``: the command line that wires engine, control plane and bench together."""
