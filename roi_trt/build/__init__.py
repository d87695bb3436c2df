"""TensorRT engines built on this machine's GPU: build targets and the builder with its sidecars (torch-free,
Python 3.6). The version-dependent API paths and the GDN1 plugin loader live with the runtime
(roi_trt.backends.tensorrt), which imports nothing from here."""
