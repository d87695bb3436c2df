// GDN1 arithmetic shared by the CUDA kernel and the host reference, so both round the same way:
//   forward  y_i = x_i / (beta_i + sum_j gamma_ij * |x_j|)
//   inverse  y_i = x_i * (beta_i + sum_j gamma_ij * |x_j|)
// The normalizer starts at beta_i and adds the terms for j = 0, 1, ... with one fused multiply-add
// each (correctly rounded on host and device), so kernel and reference agree bit for bit.
// Plain C++ when compiled without CUDA; no TensorRT headers.
#ifndef ROI_TRT_GDN1_MATH_H
#define ROI_TRT_GDN1_MATH_H

#ifdef __CUDACC__
#define GDN1_HD __host__ __device__ __forceinline__
#else
#define GDN1_HD inline
#endif

#ifndef __CUDACC_RTC__  // NVRTC has no C library headers; fmaf/fabsf are built in there
#include <math.h>
#endif

// |x_j|: taken once per input value, before it is mixed into every output channel.
GDN1_HD float gdn1_magnitude(float x) { return fabsf(x); }

// One term of the channel mixing: norm + gamma_ij * |x_j|.
GDN1_HD float gdn1_accumulate(float norm, float gamma_ij, float magnitude_j)
{
    return fmaf(gamma_ij, magnitude_j, norm);
}

// The layer's output from x_i and its normalizer.
GDN1_HD float gdn1_output(float x_i, float norm_i, int inverse) { return inverse ? x_i * norm_i : x_i / norm_i; }

#ifndef __CUDACC_RTC__
// Host reference over a whole NCHW tensor (hw = H * W); gamma is [C, C] row-major (row = output channel).
inline void gdn1_reference(const float* x, const float* gamma, const float* beta, float* y, int batch, int channels,
    int hw, int inverse)
{
    for (long long n = 0; n < batch; ++n)
    {
        const float* xn = x + n * channels * hw;
        float* yn = y + n * channels * hw;
        for (long long p = 0; p < hw; ++p)
        {
            for (int i = 0; i < channels; ++i)
            {
                float norm = beta[i];
                for (int j = 0; j < channels; ++j)
                    norm = gdn1_accumulate(norm, gamma[i * channels + j], gdn1_magnitude(xn[j * hw + p]));
                yn[i * hw + p] = gdn1_output(xn[i * hw + p], norm, inverse);
            }
        }
    }
}
#endif

#endif  // ROI_TRT_GDN1_MATH_H
