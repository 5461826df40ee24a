"""ams-ray: Adaptive Model Streaming as a library. It never imports Ray.

Subpackages, bottom to top (a package imports only from those below it; `pyproject.toml`'s
import-linter contracts check it in the test suite):

- `config`, `accuracy`, `telemetry`: the knobs, mIoU and bandwidth arithmetic, and the catalogue of
  Prometheus metrics; plain modules every layer may use.
- `wire`: what crosses between a device, the server and the checkpoint store, as bytes.
- `data`: videos, label maps, the synthetic world, and teachers that look labels up.
- `device`: what runs on a camera: the ONNX student, its upload/apply loop, the HTTP client.
- `models`: torch students and the teacher network, their weights and ONNX export.
- `teach`: every teacher behind one protocol, and labelling whole videos.
- `learn`: one stream's server-side session: window, ASR/ATR, distillation rounds, packets.
- `service`, `fleet`, `evaluation`: the long-running service's building blocks, the many-device
  benchmark's planning and report, and the single-stream experiment with its command line.

Start at README.md's "Data path".
"""
