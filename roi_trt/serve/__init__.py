"""Many cameras, one decode service, served by NVIDIA Triton Inference Server.

The data flow: a camera encodes frames (roi_trt.serve.camera) and sends the `.roi` streams over
Triton's HTTP or gRPC protocol (roi_trt.serve.client); the server's `roi_decode` model
(roi_trt.serve.triton_model, over roi_trt.serve.service) refuses what it must not decode, entropy-decodes
the rest, runs the synthesis transform (in its own process, or as a separate Triton model with dynamic
batching and GPU instances) and answers with the image or hands it to a sink. roi_trt.serve.repository
writes the model repository Triton serves; roi_trt.serve.server runs the bundled `tritonserver`.
"""
