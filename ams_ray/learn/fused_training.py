"""Several streams' training rounds as one batched step (HFTA-style horizontal fusion).

A trainer host that holds K streams of one student architecture can train their due rounds
together: each stream's trainable tensors are stacked along a new first dimension, the
student runs once over all K batches through `torch.func.vmap(functional_call(...))`
(convolutions become one grouped convolution), and one Adam steps the stacked tensors.
Adam is element-wise, so one optimiser over stacked parameters is K independent ones, and
gradient-guided selection stays a `topk` per stream. Every stream draws its batches from
its own RNG in the same order as `OnlineDistiller.train_round`, so the packets equal the
sequential ones up to float rounding (tests/test_fused_training.py).

On a CPU core fusion saves no arithmetic (4 fused tiny students cost ~1.1x four sequential
rounds); on a GPU it turns K small kernels into one large one, which is where it pays.
"""

from __future__ import annotations

import math
import time

import torch
from torch.func import functional_call, vmap
from torch.nn import functional as F

from ams_ray.learn.distill import OnlineDistiller, RoundResult
from ams_ray.learn.window import FrameWindow


def fusable(distillers: list[OnlineDistiller]) -> bool:
    """True when the distillers can share one step: same student layout, training settings,
    strategy and device."""
    first = distillers[0]
    return all(d.layout.fingerprint == first.layout.fingerprint and d.training == first.training
               and d.strategy == first.strategy and d.device == first.device for d in distillers)


def train_rounds(distillers: list[OnlineDistiller], windows: list[FrameWindow],
                 rates: list[float | None]) -> list[RoundResult]:
    """One round for each stream; fused where two or more can be, sequential otherwise."""
    results: list[RoundResult | None] = [None] * len(distillers)
    ready = [i for i, w in enumerate(windows) if len(w)]
    if len(ready) < 2 or not fusable([distillers[i] for i in ready]):
        return [d.train_round(w, sampling_rate_fps=r) for d, w, r in zip(distillers, windows, rates)]
    for i, window in enumerate(windows):
        if not len(window):
            results[i] = distillers[i].train_round(window)  # the usual "no labelled frames yet" skip
    fused = _FusedRound([distillers[i] for i in ready], [windows[i] for i in ready])
    for i, result in zip(ready, fused.run([rates[i] for i in ready])):
        results[i] = result
    return results  # type: ignore[return-value]


class _FusedRound:
    """The state of one fused round: stacked parameters, per-stream starts, masks and losses."""

    def __init__(self, distillers: list[OnlineDistiller], windows: list[FrameWindow]) -> None:
        self.distillers, self.windows = distillers, windows
        self.template = distillers[0].model
        self.names = list(distillers[0].layout.names)
        self.starts = [d.pretrained if d.training.restart_from_pretrained else d.mirror for d in distillers]
        for d, start in zip(distillers, self.starts):
            d._load(start)
        self.params = [torch.stack([d.params[j].detach() for d in distillers]).requires_grad_()
                       for j in range(len(self.names))]
        trainable = set(self.names)
        models = [dict(d.model.named_parameters()) for d in distillers]
        self.frozen = {n: torch.stack([m[n].detach() for m in models]) for n in models[0] if n not in trainable}
        buffers = [dict(d.model.named_buffers()) for d in distillers]
        self.buffers = {n: torch.stack([b[n] for b in buffers]) for n in buffers[0]}
        self.failed: list[str | None] = [None] * len(distillers)
        self.last_batch: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(distillers)

    def _forward(self, params: dict, buffers: dict, frames: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, (params, buffers), (frames,))

    def _losses(self) -> torch.Tensor:
        """Each stream's loss on its own next batch; a stream that failed reuses its last batch
        (its RNG must not move, as sequential training would have stopped drawing)."""
        batches = []
        for k, (d, window) in enumerate(zip(self.distillers, self.windows)):
            if self.failed[k] is None or self.last_batch[k] is None:
                self.last_batch[k] = d._batch(window)
            batches.append(self.last_batch[k])
        frames = torch.stack([f for f, _ in batches])
        labels = torch.stack([l for _, l in batches])
        params = {**dict(zip(self.names, self.params)), **self.frozen}
        logits = vmap(self._forward)(params, self.buffers, frames)
        per_pixel = F.cross_entropy(logits.flatten(0, 1), labels.flatten(0, 1), reduction="none")
        return per_pixel.view(len(batches), -1).mean(1)

    def _select_coordinates(self) -> list[torch.Tensor] | None:
        """Stacked masks: for each stream, exactly its `fraction` of coordinates with the
        largest probe gradient (as `OnlineDistiller._select_coordinates`)."""
        strategy = self.distillers[0].strategy
        if strategy.kind != "gradient_guided":
            return None
        losses = self._losses()
        self._mark_failures(losses, "non-finite loss in the probing step")
        grads = torch.autograd.grad(losses.sum(), self.params)
        masks = [torch.zeros_like(p, dtype=torch.bool) for p in self.params]
        for k in range(len(self.distillers)):
            magnitude = torch.cat([g[k].abs().flatten() for g in grads])
            keep = max(1, int(round(strategy.fraction * magnitude.numel())))
            chosen = torch.zeros(magnitude.numel(), dtype=torch.bool, device=magnitude.device)
            chosen[torch.topk(magnitude, keep, sorted=False).indices] = True
            offset = 0
            for mask in masks:
                size = mask[k].numel()
                mask[k] = chosen[offset : offset + size].view_as(mask[k])
                offset += size
        return masks

    def _mark_failures(self, losses: torch.Tensor, reason: str) -> list[float]:
        values = [float(v) for v in losses.detach()]
        for k, value in enumerate(values):
            if self.failed[k] is None and not math.isfinite(value):
                self.failed[k] = reason
        return values

    def run(self, rates: list[float | None]) -> list[RoundResult]:
        began = time.perf_counter()
        training = self.distillers[0].training
        masks = self._select_coordinates()
        optimiser = torch.optim.Adam(self.params, lr=training.learning_rate)
        loss_values = [math.nan] * len(self.distillers)
        for iteration in range(training.iterations):
            losses = self._losses()
            current = self._mark_failures(losses, f"non-finite loss at iteration {iteration}")
            loss_values = [v if self.failed[k] is None else loss_values[k] for k, v in enumerate(current)]
            optimiser.zero_grad()
            losses.sum().backward()
            alive = torch.tensor([f is None for f in self.failed], device=self.params[0].device)
            for j, p in enumerate(self.params):
                keep = alive.view(-1, *([1] * (p.dim() - 1)))
                # masked_fill, not a product: a failed stream's NaN gradients must become 0
                p.grad.masked_fill_(~(keep if masks is None else masks[j] & keep), 0.0)
            optimiser.step()
        seconds = time.perf_counter() - began
        return [self._result(k, rates[k], masks, loss_values[k], seconds) for k in range(len(self.distillers))]

    def _result(self, k: int, rate: float | None, masks: list[torch.Tensor] | None, loss: float,
                seconds: float) -> RoundResult:
        """Hand stream k's trained tensors back to its distiller, which packs the packet exactly
        as after a sequential round. `duration_s` is the whole fused step's time."""
        d = self.distillers[k]
        if self.failed[k] is not None:
            d._load(d.mirror)
            return RoundResult(None, self.failed[k], loss, 0, seconds)
        d._load([p[k].detach() for p in self.params])
        packet, coords = d._packet(self.starts[k], None if masks is None else [m[k] for m in masks], rate)
        return RoundResult(packet, None, loss, coords, seconds)
