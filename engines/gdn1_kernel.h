// Launcher of the fused GDN1 kernel (no TensorRT headers: the plugin glue and tests call it alike).
#ifndef ROI_TRT_GDN1_KERNEL_H
#define ROI_TRT_GDN1_KERNEL_H

#include <cuda_runtime_api.h>

// y = GDN1(x) for FP32 NCHW tensors with hw = H * W pixels per channel, gamma [C, C] row-major
// (row = output channel) and beta [C] holding the effective (re-parametrized) values. inverse != 0
// multiplies instead of dividing. x and y must not overlap. Returns the launch error, if any.
extern "C" cudaError_t gdn1_forward(const float* x, const float* gamma, const float* beta, float* y, int batch,
    int channels, int hw, int inverse, cudaStream_t stream);

#endif  // ROI_TRT_GDN1_KERNEL_H
