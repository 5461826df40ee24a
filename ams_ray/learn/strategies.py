"""The named strategies: what the server does for a stream, as rows of the comparison table.

A trainer host and the experiment pick a strategy by the same name, so they live here, below
both: the service trains `ams_gg10` exactly as `compare` scores it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ams_ray.learn.distill import Strategy


@dataclass(frozen=True)
class StrategySpec:
    """A named row of the comparison table."""

    name: str
    train: bool = True
    strategy: Strategy = Strategy()
    asr: bool = False
    atr: bool = False
    one_time: bool = False  # train once on the first `training.one_time_window_s`, then stop


STRATEGIES: dict[str, StrategySpec] = {
    s.name: s
    for s in [
        StrategySpec("pretrained", train=False),
        StrategySpec("one_time", strategy=Strategy("full"), one_time=True),
        StrategySpec("ams_full", strategy=Strategy("full")),
        StrategySpec("ams_gg10", strategy=Strategy("gradient_guided", 0.10)),
        StrategySpec("ams_gg5", strategy=Strategy("gradient_guided", 0.05)),
        StrategySpec("ams_gg10_asr", strategy=Strategy("gradient_guided", 0.10), asr=True),
        StrategySpec("ams_gg10_asr_atr", strategy=Strategy("gradient_guided", 0.10), asr=True, atr=True),
        # Also available, not in the default table:
        StrategySpec("ams_gg1", strategy=Strategy("gradient_guided", 0.01)),
        StrategySpec("ams_gg20", strategy=Strategy("gradient_guided", 0.20)),
        StrategySpec("ams_last_layers", strategy=Strategy("last_layers")),
    ]
}
DEFAULT_STRATEGIES = ("pretrained", "one_time", "ams_full", "ams_gg10", "ams_gg5", "ams_gg10_asr", "ams_gg10_asr_atr")
