"""The many-device benchmark's pure side: planning a fleet from a config and the cluster's
resources (placement), fault specs, per-process memory, and the run's report.

Used by `serve/fleet.py` and `benchmarks/`; production code never imports it.
"""
