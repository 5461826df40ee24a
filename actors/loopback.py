"""Keep a locally started Ray cluster on 127.0.0.1. Must run before the first `import ray`.

Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, at import; with it "0" every port of a
single-node cluster listens on loopback instead of the machine's address. This module
imports nothing from Ray so that entry points can call it first.
"""

from __future__ import annotations

import os

LOOPBACK_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def use_loopback_only() -> None:
    for key, value in LOOPBACK_ENV.items():
        os.environ.setdefault(key, value)
