"""ams-ray: Adaptive Model Streaming as a library. Start at README.md's "Data path"."""
