"""The single-stream experiment: play one video per strategy on its own clock, score what the
device holds at every moment, compare strategies, pretrain students, and the `python -m ams_ray`
command line.

The top of the library: nothing else in ams_ray, actors or serve imports it.
"""
