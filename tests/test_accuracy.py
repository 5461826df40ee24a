import numpy as np
import pytest

from ams_ray.accuracy import BandwidthMeter, MiouTrace, confusion_matrix, frame_miou


def test_miou_counts_only_classes_present():
    labels = np.array([[0, 0, 1, 1]])
    prediction = np.array([[0, 1, 1, 1]])
    # class 0: IoU 1/2, class 1: IoU 2/3; class 2..6 absent and ignored
    assert frame_miou(labels, prediction, 7) == pytest.approx(100 * (0.5 + 2 / 3) / 2)


def test_perfect_prediction_is_100_and_out_of_range_ids_fail():
    labels = np.random.default_rng(0).integers(0, 5, size=(8, 8))
    assert frame_miou(labels, labels, 5) == 100.0
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix(labels, labels + 1, 5)


def test_windowed_trace_and_bandwidth():
    trace = MiouTrace([0, 1, 2, 3], [10, 20, 30, 40])
    _, smooth = trace.windowed(1.0)
    assert smooth.tolist() == [10, 15, 25, 35]
    meter = BandwidthMeter(uplink_bytes=125_000)
    assert meter.uplink_kbps(10.0) == pytest.approx(100.0)
