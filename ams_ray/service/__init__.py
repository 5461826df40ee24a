"""Building blocks of the long-running service and its trainer hosts: settings, the device
registry and tokens, rate limits, checks of untrusted chunks, the checkpoint store, training
turns as leases and the policies that order them.

Production code: may import `learn` and everything below it; never `evaluation` or `fleet`.
"""
