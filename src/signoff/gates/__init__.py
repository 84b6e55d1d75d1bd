"""Human validation gates: deciding, links, rules, timers, the gate service, audit checks."""
