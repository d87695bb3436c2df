"""TensorRT at run time (torch-free, Python 3.6): `api` (what each TensorRT release needs), `plugin` (the GDN1
plugin library), `loader` (an engine deserialized only after its sidecar vouches for it) and `runner` (the
backend). The builder (roi_trt.build) uses the first three; nothing here imports the builder. tensorrt and
the CUDA libraries are imported lazily, so importing this package needs neither."""
