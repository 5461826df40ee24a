import numpy as np
from ray import serve

from serve.teacher import APP_NAME, teacher_app


def test_teacher_batches_frames_from_concurrent_callers(ray_local, short_video):
    from ams_ray.synthetic import SyntheticVideo

    serve.start(http_options={"host": "127.0.0.1"})
    handle = serve.run(teacher_app("oracle", max_batch_size=8, batch_wait_s=0.1, num_cpus=0.5),
                       name=APP_NAME, route_prefix=None)
    truth = SyntheticVideo(7, duration_s=40.0, fps=15.0, height=64, width=128)
    frame = np.zeros((64, 128, 3), np.uint8)
    responses = [handle.label.remote((str(short_video.path), i, frame)) for i in range(32)]
    results = [r.result() for r in responses]
    for i, (labels, _, _) in enumerate(results):
        assert np.array_equal(labels, truth.labels(i))
    batch_sizes = [batch for _, batch, _ in results]
    assert np.mean(batch_sizes) > 1 and max(batch_sizes) <= 8
    assert handle.num_classes.remote(str(short_video.path)).result() == 7
    serve.delete(APP_NAME)


def test_a_bad_request_fails_alone_and_its_batch_mates_get_labels(ray_local, short_video, tmp_path):
    import pytest

    serve.start(http_options={"host": "127.0.0.1"})
    handle = serve.run(teacher_app("oracle", max_batch_size=8, batch_wait_s=0.2, num_cpus=0.5),
                       name=APP_NAME, route_prefix=None)
    frame = np.zeros((64, 128, 3), np.uint8)
    bad_video = str(tmp_path / "camera.mp4")  # a real video has no exact labels for the oracle
    requests = [(bad_video if i == 3 else str(short_video.path), i, frame) for i in range(8)]
    responses = [handle.label.remote(r) for r in requests]
    for i, response in enumerate(responses):
        if i == 3:
            with pytest.raises(Exception, match="oracle' needs exact labels"):
                response.result()
        else:
            labels, batch, _ = response.result()
            assert labels.shape == (64, 128) and batch > 1
    serve.delete(APP_NAME)
