"""Ray actors of ams-ray. Thin: each holds a library object and moves its messages."""
