// What the TensorRT 8 glue (IPluginV2DynamicExt) and the TensorRT 10+ glue (IPluginV3) share: the
// plugin's identity, its one field, the tensor checks and the kernel call.
#ifndef ROI_TRT_GDN1_PLUGIN_COMMON_H
#define ROI_TRT_GDN1_PLUGIN_COMMON_H

#include <NvInferRuntime.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <string>

#include "gdn1_kernel.h"

// The library is built with hidden visibility; only the entry points below are exported.
#define ROI_TRT_EXPORT extern "C" __attribute__((visibility("default")))

namespace roi_trt
{

// The ONNX node `roi_trt::GDN1(x, gamma, beta)` as onnx-tensorrt looks it up: op type, plugin_version,
// plugin_namespace and the attribute it passes on. Keep equal to roi_trt/spec.py.
constexpr char const* kGdn1Name = "GDN1";
constexpr char const* kGdn1Version = "1";
constexpr char const* kGdn1Namespace = "roi_trt";
constexpr char const* kGdn1InverseField = "inverse";

// Logger handed over at registration; TensorRT calls plugins with noexcept, so errors go here.
inline nvinfer1::ILogger*& gdn1_logger()
{
    static nvinfer1::ILogger* logger = nullptr;
    return logger;
}

inline void gdn1_log_error(std::string const& message)
{
    if (nvinfer1::ILogger* logger = gdn1_logger())
        logger->log(nvinfer1::ILogger::Severity::kERROR, ("GDN1 plugin: " + message).c_str());
}

// The required `inverse` field (INT32, 0 = divide, 1 = multiply); a missing one is an error, since
// guessing would silently swap the encoder's and the decoder's layer. Fields it does not know are ignored.
inline bool gdn1_parse_inverse(nvinfer1::PluginFieldCollection const* fc, int32_t& inverse)
{
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& field = fc->fields[i];
        if (field.name == nullptr || std::strcmp(field.name, kGdn1InverseField) != 0)
            continue;
        int32_t const* value = static_cast<int32_t const*>(field.data);
        if (field.type != nvinfer1::PluginFieldType::kINT32 || field.length != 1 || value == nullptr
            || (*value != 0 && *value != 1))
        {
            gdn1_log_error("field 'inverse' must be one INT32, 0 or 1");
            return false;
        }
        inverse = *value;
        return true;
    }
    gdn1_log_error("field 'inverse' is missing");
    return false;
}

// x [N, C, H, W], gamma [C, C], beta [C]; dimensions still unknown (-1) at build time pass.
inline char const* gdn1_shape_error(nvinfer1::Dims const& x, nvinfer1::Dims const& gamma, nvinfer1::Dims const& beta)
{
    if (x.nbDims != 4)
        return "input must be 4-D (NCHW)";
    if (gamma.nbDims != 2 || beta.nbDims != 1)
        return "gamma must be [C, C] and beta [C]";
    int64_t const channels = x.d[1];
    auto const fits = [channels](int64_t d) { return channels < 0 || d < 0 || d == channels; };
    if (!fits(gamma.d[0]) || !fits(gamma.d[1]) || !fits(beta.d[0]))
        return "gamma and beta must match the input's channel count";
    return nullptr;
}

inline bool gdn1_supports(nvinfer1::DataType type, nvinfer1::TensorFormat format)
{
    return type == nvinfer1::DataType::kFLOAT && format == nvinfer1::TensorFormat::kLINEAR;
}

// Inputs x, gamma, beta and output y as TensorRT hands them to enqueue; returns 0 on success.
inline int32_t gdn1_enqueue(nvinfer1::PluginTensorDesc const* in, void const* const* inputs, void* const* outputs,
    int32_t inverse, cudaStream_t stream)
{
    nvinfer1::Dims const& x = in[0].dims;
    if (char const* error = gdn1_shape_error(x, in[1].dims, in[2].dims))
    {
        gdn1_log_error(error);
        return 1;
    }
    int64_t const hw = static_cast<int64_t>(x.d[2]) * x.d[3];
    if (x.d[0] > INT_MAX || x.d[1] > INT_MAX || hw > INT_MAX)
    {
        gdn1_log_error("tensor too large for 32-bit indexing");
        return 1;
    }
    cudaError_t const status = gdn1_forward(static_cast<float const*>(inputs[0]), static_cast<float const*>(inputs[1]),
        static_cast<float const*>(inputs[2]), static_cast<float*>(outputs[0]), static_cast<int>(x.d[0]),
        static_cast<int>(x.d[1]), static_cast<int>(hw), inverse, stream);
    if (status != cudaSuccess)
    {
        gdn1_log_error(std::string("kernel launch failed: ") + cudaGetErrorString(status));
        return 1;
    }
    return 0;
}

}  // namespace roi_trt

#endif  // ROI_TRT_GDN1_PLUGIN_COMMON_H
