"""Ray Serve applications of ams-ray: the shared, batched teacher."""
