"""The wire: messages between a device and the server (`SampleChunk`, update packets) and the
stream-state record the store keeps, each with an exact byte round trip.

Imports numpy, zstandard and the standard library only: a device installs it without torch or
Ray, and it imports nothing else of ams_ray.
"""
