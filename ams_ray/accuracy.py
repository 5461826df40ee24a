"""Accuracy and bandwidth accounting.

mIoU follows the original AMS evaluation: for each evaluated frame, a confusion matrix over
the classes present in the teacher's labels or the prediction, IoU averaged over those
classes; a video's mIoU is the mean over its evaluated frames. Averaging per frame keeps
the time series and the headline figure consistent.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = teacher label, columns = prediction."""
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    top = max(int(labels.max(initial=0)), int(predictions.max(initial=0)))
    if top >= num_classes:
        raise ValueError(f"class id {top} out of range for {num_classes} classes")
    flat = labels.astype(np.int64).ravel() * num_classes + predictions.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou_from_confusion(cm: np.ndarray) -> float:
    """Mean IoU in percent over classes present in labels or predictions."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    if not present.any():
        return 100.0
    return float(100.0 * (tp[present] / union[present]).mean())


def frame_miou(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    return miou_from_confusion(confusion_matrix(labels, predictions, num_classes))


def batch_miou(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> list[float]:
    return [frame_miou(l, p, num_classes) for l, p in zip(labels, predictions)]


@dataclass
class MiouTrace:
    """mIoU of each evaluated frame against video time, for tables and plots."""

    times_s: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, time_s: float, miou: float) -> None:
        self.times_s.append(time_s)
        self.values.append(miou)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else float("nan")

    def recent_mean(self, window_s: float) -> float:
        """Mean over the last `window_s` seconds up to the newest frame (the live gauge's value)."""
        if not self.times_s:
            return float("nan")
        start = bisect.bisect_left(self.times_s, self.times_s[-1] - window_s)
        return float(np.mean(self.values[start:]))

    def windowed(self, window_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Trailing moving average over `window_s` seconds, for readable plots."""
        t, v = np.asarray(self.times_s), np.asarray(self.values)
        if t.size == 0:
            return t, v
        csum = np.concatenate([[0.0], np.cumsum(v)])
        starts = np.searchsorted(t, t - window_s, side="left")
        counts = np.arange(1, t.size + 1) - starts
        return t, (csum[1:] - csum[starts]) / counts


@dataclass
class BandwidthMeter:
    """Bytes sent each way, reported as Kbps over the stream's duration."""

    uplink_bytes: int = 0
    downlink_bytes: int = 0

    def kbps(self, num_bytes: int, duration_s: float) -> float:
        return 8.0 * num_bytes / 1000.0 / duration_s if duration_s > 0 else 0.0

    def uplink_kbps(self, duration_s: float) -> float:
        return self.kbps(self.uplink_bytes, duration_s)

    def downlink_kbps(self, duration_s: float) -> float:
        return self.kbps(self.downlink_bytes, duration_s)
