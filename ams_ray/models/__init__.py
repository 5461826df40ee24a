"""Models: the torch students (built from a spec, weights from a file or the embedded assets),
the embedded teacher network, and the ONNX export a device receives.

Server side: imports torch. May import `device` (the ONNX bundle format), `data`, `wire` and the
plain modules.
"""
