"""The device (an edge camera): runs the student in ONNX Runtime, samples and uploads chunks at
the server's rate, applies update packets, and scores itself; `python -m ams_ray.device` is the
standalone HTTP client.

Everything here installs with `pip install ams-ray` alone: it never imports torch, torchvision
or Ray (checked by import-linter). May import `wire`, `data`, `config` and `accuracy`.
"""
