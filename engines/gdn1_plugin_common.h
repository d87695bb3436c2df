// What the TensorRT 8 glue (IPluginV2DynamicExt) and the TensorRT 10+ glue (IPluginV3) share: the
// plugin's identity, its registration, where its errors go, its one field, the tensor checks and the kernel call.
#ifndef ROI_TRT_GDN1_PLUGIN_COMMON_H
#define ROI_TRT_GDN1_PLUGIN_COMMON_H

#include <NvInferRuntime.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>

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

// TensorRT's own plugin-library loading (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, ILoggerFinder)
// exists from 8.6 on; the Nano's 8.0/8.2 have neither.
#define ROI_TRT_HAS_LOAD_LIBRARY (NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6))

// The logger given to roiTrtInitPlugins, if any.
inline nvinfer1::ILogger*& gdn1_given_logger()
{
    static nvinfer1::ILogger* logger = nullptr;
    return logger;
}

#if ROI_TRT_HAS_LOAD_LIBRARY
// The finder TensorRT's loadLibrary hands over (setLoggerFinder); asked at each message, as its logger may change.
inline nvinfer1::ILoggerFinder*& gdn1_logger_finder()
{
    static nvinfer1::ILoggerFinder* finder = nullptr;
    return finder;
}
#endif

// Where plugin errors go: the logger given to roiTrtInitPlugins, else the one loadLibrary's finder names, else
// TensorRT's global logger (getLogger(): null in TensorRT 8.6 while no builder or runtime exists), else stderr.
// TensorRT calls plugins through noexcept methods that return only a status, so this is the one place a
// failure is explained.
inline void gdn1_log_error(char const* message, char const* detail = nullptr) noexcept
{
    nvinfer1::ILogger* logger = gdn1_given_logger();
#if ROI_TRT_HAS_LOAD_LIBRARY
    if (logger == nullptr && gdn1_logger_finder() != nullptr)
        logger = gdn1_logger_finder()->findLogger();
#endif
    if (logger == nullptr)
        logger = getLogger();
    char line[512];
    std::snprintf(line, sizeof(line), "%s::%s plugin: %s%s%s", kGdn1Namespace, kGdn1Name, message,
        detail != nullptr ? ": " : "", detail != nullptr ? detail : "");
    if (logger != nullptr)
        logger->log(nvinfer1::ILogger::Severity::kERROR, line);
    else
        std::fprintf(stderr, "[roi_trt] [E] %s\n", line);
}

// The registry's creator type and lookup: TensorRT 10+ holds V2 and V3 creators as IPluginCreatorInterface.
#if NV_TENSORRT_MAJOR >= 10
using Gdn1RegistryEntry = nvinfer1::IPluginCreatorInterface;
inline Gdn1RegistryEntry* gdn1_find_registered(nvinfer1::IPluginRegistry& registry)
{
    return registry.getCreator(kGdn1Name, kGdn1Version, kGdn1Namespace);
}
#else
using Gdn1RegistryEntry = nvinfer1::IPluginCreator;
inline Gdn1RegistryEntry* gdn1_find_registered(nvinfer1::IPluginRegistry& registry)
{
    return registry.getPluginCreator(kGdn1Name, kGdn1Version, kGdn1Namespace);
}
#endif

// True while the creator is in the registry by this library's own registration (not loadLibrary's).
inline bool& gdn1_registered_by_library()
{
    static bool registered = false;
    return registered;
}

// Registers `creator` under namespace "roi_trt" unless it already is. REGISTER_TENSORRT_PLUGIN would use namespace
// "", where onnx-tensorrt never finds a creator that reports "roi_trt". False, with the reason logged, if TensorRT
// refused or another library's GDN1 creator holds the name. Runs at load time (a static initializer: libnvinfer, a
// dependency of this library, is initialized first) and from roiTrtInitPlugins; not thread-safe, like dlopen's
// initializers and TensorRT's loaders that call it.
inline bool gdn1_register(Gdn1RegistryEntry& creator) noexcept
{
    nvinfer1::IPluginRegistry* registry = getPluginRegistry();
    if (registry == nullptr)
    {
        gdn1_log_error("TensorRT returned no plugin registry");
        return false;
    }
    if (Gdn1RegistryEntry* found = gdn1_find_registered(*registry))
    {
        if (found != &creator)
            gdn1_log_error("another library already registered this plugin name and version");
        return found == &creator;
    }
    if (!registry->registerCreator(creator, kGdn1Namespace))
    {
        gdn1_log_error("TensorRT refused to register the creator");
        return false;
    }
    gdn1_registered_by_library() = true;
    return true;
}

// roiTrtInitPlugins(logger): registers `creator` (see gdn1_register) and keeps `logger`, an nvinfer1::ILogger* or
// null, for the plugin's errors. True if the creator is registered, by this call or before.
inline bool gdn1_init(void* logger, Gdn1RegistryEntry& creator) noexcept
{
    if (logger != nullptr)
        gdn1_given_logger() = static_cast<nvinfer1::ILogger*>(logger);
    return gdn1_register(creator);
}

#if ROI_TRT_HAS_LOAD_LIBRARY
// Called where TensorRT's loadLibrary asks for the creators (getCreators, getPluginCreators). loadLibrary
// registers them itself and fails if one is registered already - and then unloads the library, leaving the
// load-time registration pointing into unmapped code (measured with TensorRT 8.6). So the load-time
// registration steps back and loadLibrary's takes its place.
inline void gdn1_hand_over(Gdn1RegistryEntry& creator) noexcept
{
    nvinfer1::IPluginRegistry* registry = getPluginRegistry();
    if (gdn1_registered_by_library() && registry != nullptr && registry->deregisterCreator(creator))
        gdn1_registered_by_library() = false;
}
#endif

// The required `inverse` field (INT32, 0 = divide, 1 = multiply); a missing one is an error, since
// guessing would silently swap the encoder's and the decoder's layer. Fields it does not know are ignored.
inline bool gdn1_parse_inverse(nvinfer1::PluginFieldCollection const* fc, int32_t& inverse) noexcept
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

// The tensor counts TensorRT passes; logs and returns false unless they are 3 (x, gamma, beta) and 1 (y).
inline bool gdn1_counts_ok(int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs == 3 && nbOutputs == 1)
        return true;
    char counts[64];
    std::snprintf(counts, sizeof(counts), "got %d and %d", static_cast<int>(nbInputs), static_cast<int>(nbOutputs));
    gdn1_log_error("needs 3 inputs (x, gamma, beta) and 1 output", counts);
    return false;
}

// x [N, C, H, W], gamma [C, C], beta [C]; dimensions still unknown (-1) at build time pass. Logs what is wrong.
inline bool gdn1_shapes_ok(nvinfer1::Dims const& x, nvinfer1::Dims const& gamma, nvinfer1::Dims const& beta) noexcept
{
    char const* error = nullptr;
    int64_t const channels = x.nbDims == 4 ? x.d[1] : -1;
    auto const fits = [channels](int64_t d) { return channels < 0 || d < 0 || d == channels; };
    if (x.nbDims != 4)
        error = "input must be 4-D (NCHW)";
    else if (gamma.nbDims != 2 || beta.nbDims != 1)
        error = "gamma must be [C, C] and beta [C]";
    else if (!fits(gamma.d[0]) || !fits(gamma.d[1]) || !fits(beta.d[0]))
        error = "gamma and beta must match the input's channel count";
    if (error != nullptr)
        gdn1_log_error(error);
    return error == nullptr;
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
    if (!gdn1_shapes_ok(x, in[1].dims, in[2].dims))
        return 1;
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
        gdn1_log_error("kernel launch failed", cudaGetErrorString(status));
        return 1;
    }
    return 0;
}

}  // namespace roi_trt

#endif  // ROI_TRT_GDN1_PLUGIN_COMMON_H
