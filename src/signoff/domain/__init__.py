"""Pure domain: flow specs, states and transition tables, planning and gate policy (no I/O)."""
