"""TensorRT engines: version-dependent API paths, build targets, the builder with its sidecars, and the GDN1
plugin loader (torch-free, Python 3.6)."""
