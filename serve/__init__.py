"""Ray Serve applications and what runs them: the shared, batched teacher deployment, the HTTP
ingress for devices (`python -m serve.app`), the device registry's command line, and the
benchmark fleet that deploys the teacher beside trainer and device actors.

The top of the runtime: may import `actors` and `ams_ray`; nothing imports it.
"""
