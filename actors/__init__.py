"""Ray actors of ams-ray. Thin: each holds library objects and moves their messages.

May import the library (`ams_ray`); never `serve` (Serve applications sit on top of actors and
import them, not the other way round; checked by import-linter).
"""
