import numpy as np
import pytest

from ams_ray.data.synthetic import SyntheticVideo
from ams_ray.wire.label_codec import decode_labels, encode_labels


def test_label_maps_round_trip_exactly_and_shrink_far_below_raw():
    video = SyntheticVideo(3, duration_s=20, fps=1, height=64, width=128)
    labels = np.stack([video.labels(i) for i in range(10)])
    data = encode_labels(labels)
    back = decode_labels(data)
    assert back.dtype == np.uint8 and np.array_equal(back, labels)
    assert len(data) < labels.nbytes / 20


def test_noise_round_trips_too_and_wrong_input_is_refused():
    noise = np.random.default_rng(0).integers(0, 255, (3, 5, 7), dtype=np.uint8)
    assert np.array_equal(decode_labels(encode_labels(noise)), noise)
    with pytest.raises(ValueError, match=r"\(N, H, W\) uint8"):
        encode_labels(noise.astype(np.int64))
