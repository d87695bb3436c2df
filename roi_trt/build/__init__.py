"""Building TensorRT engines: the GDN1 plugin library and its loader (torch-free, Python 3.6)."""
