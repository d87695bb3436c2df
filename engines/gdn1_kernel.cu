// Fused GDN1 for FP32 NCHW: |x|, the C x C channel mixing, + beta and the divide (multiply when
// inverse) in one pass, so the normalizer never goes through global memory.
//
// A block owns kBlockPixels consecutive pixels of one image and produces all output channels,
// kOutTile at a time; input channels stream through shared memory kInTile at a time (|x| tile and
// the matching gamma tile). Each thread keeps a kOutPerThread x kPixelsPerThread register tile of
// normalizers, so one shared-memory read feeds several multiply-adds. Input channels are added in
// ascending order, exactly as gdn1_reference does.
#include "gdn1_math.h"

#ifndef __CUDACC_RTC__  // NVRTC (the sm_53 check) compiles the device code only
#include <climits>

#include "gdn1_kernel.h"
#endif

namespace roi_trt
{

constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int kRows = kThreads / kWarp;                     // one warp per row of threads
constexpr int kPixelsPerThread = 4;                         // lane, lane + 32, ...: coalesced per channel
constexpr int kBlockPixels = kWarp * kPixelsPerThread;      // 128
constexpr int kOutPerThread = 8;                            // consecutive channels: two float4 gamma reads
constexpr int kOutTile = kRows * kOutPerThread;             // 64
constexpr int kInTile = kWarp;                              // input channels per shared-memory tile
// gamma tile loads: a warp copies a patch of 4 output rows x 8 consecutive input channels at a time, so each
// global row segment is one full 32-byte sector and, with a row stride of 68 floats (4 mod 32 banks), the 32
// lanes store to 32 different banks (lane -> bank 4 * (lane % 8) + lane / 8 + const). Padding the stride keeps
// rows 16-byte aligned for the float4 reads below.
constexpr int kPatchRows = 4;
constexpr int kPatchCols = kWarp / kPatchRows;              // 8
constexpr int kPatchGroups = kInTile / kPatchCols;          // patches side by side across the input channels
constexpr int kPatchStep = kRows / kPatchGroups * kPatchRows;  // output rows between one warp's patches
constexpr int kWeightStride = kOutTile + 4;
static_assert(kRows % kPatchGroups == 0 && kOutTile % kPatchStep == 0, "patches must tile the gamma tile");
static_assert(kWeightStride % 32 == 4, "the bank spread of the patch stores assumes a stride of 4 mod 32");
// Two blocks (16 warps) per SM on every target (engines/README.md has ptxas's figures): without the bound ptxas
// takes up to 140 registers on sm_75+ (one block per SM); three blocks (80 registers) spill.
constexpr int kMinBlocksPerSm = 2;

// Not in an anonymous namespace: NVRTC, which sees no launch, would drop it.
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm) gdn1_kernel(const float* __restrict__ x,
    const float* __restrict__ gamma, const float* __restrict__ beta, float* __restrict__ y, int channels, int hw,
    int tiles_per_image, int inverse)
{
    __shared__ float magnitude[kInTile][kBlockPixels];
    __shared__ __align__(16) float weight[kInTile][kWeightStride];  // gamma tile, transposed: [in][out]

    const int lane = threadIdx.x % kWarp;
    const int row = threadIdx.x / kWarp;
    const int patch_in = (row % kPatchGroups) * kPatchCols + lane % kPatchCols;
    const int patch_out = (row / kPatchGroups) * kPatchRows + lane / kPatchCols;
    const long long image = blockIdx.x / tiles_per_image;
    const int first_pixel = (blockIdx.x % tiles_per_image) * kBlockPixels;
    const float* xn = x + image * channels * hw;
    float* yn = y + image * channels * hw;

    for (int out0 = 0; out0 < channels; out0 += kOutTile)
    {
        float norm[kOutPerThread][kPixelsPerThread];
        for (int r = 0; r < kOutPerThread; ++r)
        {
            const int out = out0 + row * kOutPerThread + r;
            for (int q = 0; q < kPixelsPerThread; ++q)
                norm[r][q] = out < channels ? beta[out] : 1.0f;
        }
        for (int in0 = 0; in0 < channels; in0 += kInTile)
        {
            for (int k = row; k < kInTile; k += kRows)
            {
                const int in = in0 + k;
                for (int q = 0; q < kPixelsPerThread; ++q)
                {
                    const int pixel = first_pixel + lane + q * kWarp;
                    magnitude[k][lane + q * kWarp]
                        = (in < channels && pixel < hw) ? gdn1_magnitude(xn[(long long) in * hw + pixel]) : 0.0f;
                }
            }
            for (int o = patch_out; o < kOutTile; o += kPatchStep)
            {
                const int out = out0 + o;
                const int in = in0 + patch_in;
                weight[patch_in][o] = (out < channels && in < channels) ? gamma[(long long) out * channels + in] : 0.0f;
            }
            __syncthreads();

            const int count = min(kInTile, channels - in0);  // exactly the real input channels, in order
            for (int k = 0; k < count; ++k)
            {
                float m[kPixelsPerThread];
                for (int q = 0; q < kPixelsPerThread; ++q)
                    m[q] = magnitude[k][lane + q * kWarp];
                const float4 w0 = *reinterpret_cast<const float4*>(&weight[k][row * kOutPerThread]);
                const float4 w1 = *reinterpret_cast<const float4*>(&weight[k][row * kOutPerThread + 4]);
                const float w[kOutPerThread] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
                for (int r = 0; r < kOutPerThread; ++r)
                    for (int q = 0; q < kPixelsPerThread; ++q)
                        norm[r][q] = gdn1_accumulate(norm[r][q], w[r], m[q]);
            }
            __syncthreads();
        }

        for (int r = 0; r < kOutPerThread; ++r)
        {
            const int out = out0 + row * kOutPerThread + r;
            for (int q = 0; q < kPixelsPerThread; ++q)
            {
                const int pixel = first_pixel + lane + q * kWarp;
                if (out < channels && pixel < hw)
                {
                    const long long at = (long long) out * hw + pixel;
                    yn[at] = gdn1_output(xn[at], norm[r][q], inverse);
                }
            }
        }
    }
}

}  // namespace roi_trt

#ifndef __CUDACC_RTC__
extern "C" cudaError_t gdn1_forward(const float* x, const float* gamma, const float* beta, float* y, int batch,
    int channels, int hw, int inverse, cudaStream_t stream)
{
    if (batch < 0 || channels <= 0 || hw < 0)
        return cudaErrorInvalidValue;
    if (batch == 0 || hw == 0)
        return cudaSuccess;
    using namespace roi_trt;
    const long long tiles_per_image = (hw + kBlockPixels - 1) / kBlockPixels;
    const long long blocks = tiles_per_image * batch;
    if (blocks > INT_MAX)
        return cudaErrorInvalidConfiguration;
    gdn1_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        x, gamma, beta, y, channels, hw, static_cast<int>(tiles_per_image), inverse);
    return cudaGetLastError();
}
#endif
