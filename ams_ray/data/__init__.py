"""Data: videos (PyAV decode, H.264 sample chunks), label maps on disk, the synthetic street world
that is the embedded default, and teachers that look labels up rather than compute them.

Torch-free (a device reads its truth labels and plays its video with it); may import `wire`,
`config` and `accuracy`.
"""
