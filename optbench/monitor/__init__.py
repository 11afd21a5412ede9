"""Monitoring and responsible compression: metrics, drift, A/B statistics, fairness, robustness.

The statistics modules are pure functions over arrays, usable without the server; only
`optbench.serve` wires them to live traffic.
"""
