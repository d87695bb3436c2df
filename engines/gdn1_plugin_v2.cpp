// GDN1 as a TensorRT 8.x plugin (IPluginV2DynamicExt + IPluginCreator): the Jetson Nano's path.
// TensorRT 10/11 still load it (deprecated there; gdn1_plugin_v3.cpp is their native glue).
#include "gdn1_plugin_common.h"

#include <new>

// TensorRT 8.6+ marks the V2 interfaces deprecated; they are still what TensorRT 8.0-8.5 needs.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace
{

using namespace nvinfer1;
using namespace roi_trt;

class Gdn1PluginV2 final : public IPluginV2DynamicExt
{
public:
    Gdn1PluginV2(int32_t inverse, std::string const& pluginNamespace)
        : mInverse(inverse)
        , mNamespace(pluginNamespace)
    {
    }

    IPluginV2DynamicExt* clone() const noexcept override
    {
        try
        {
            return new Gdn1PluginV2(mInverse, mNamespace);
        }
        catch (std::exception const&)
        {
            return nullptr;
        }
    }

    DimsExprs getOutputDimensions(int32_t, DimsExprs const* inputs, int32_t, IExprBuilder&) noexcept override
    {
        return inputs[0];
    }

    bool supportsFormatCombination(
        int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override
    {
        return nbInputs == 3 && nbOutputs == 1 && gdn1_supports(inOut[pos].type, inOut[pos].format);
    }

    void configurePlugin(DynamicPluginTensorDesc const* in, int32_t, DynamicPluginTensorDesc const*, int32_t) noexcept
        override
    {
        if (char const* error = gdn1_shape_error(in[0].desc.dims, in[1].desc.dims, in[2].desc.dims))
            gdn1_log_error(error);  // void here: enqueue checks again and fails
    }

    size_t getWorkspaceSize(PluginTensorDesc const*, int32_t, PluginTensorDesc const*, int32_t) const noexcept override
    {
        return 0;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*, void const* const* inputs,
        void* const* outputs, void*, cudaStream_t stream) noexcept override
    {
        return gdn1_enqueue(inputDesc, inputs, outputs, mInverse, stream);
    }

    DataType getOutputDataType(int32_t, DataType const*, int32_t) const noexcept override
    {
        return DataType::kFLOAT;
    }

    AsciiChar const* getPluginType() const noexcept override { return kGdn1Name; }
    AsciiChar const* getPluginVersion() const noexcept override { return kGdn1Version; }
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t initialize() noexcept override { return 0; }
    void terminate() noexcept override {}

    // The serialized form is the `inverse` flag alone: gamma and beta are constant input tensors.
    size_t getSerializationSize() const noexcept override { return sizeof(mInverse); }
    void serialize(void* buffer) const noexcept override { std::memcpy(buffer, &mInverse, sizeof(mInverse)); }

    void destroy() noexcept override { delete this; }
    void setPluginNamespace(AsciiChar const* pluginNamespace) noexcept override { mNamespace = pluginNamespace; }
    AsciiChar const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }

private:
    int32_t mInverse;
    std::string mNamespace;
};

class Gdn1CreatorV2 final : public IPluginCreator
{
public:
    AsciiChar const* getPluginName() const noexcept override { return kGdn1Name; }
    AsciiChar const* getPluginVersion() const noexcept override { return kGdn1Version; }
    PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldNames; }

    IPluginV2* createPlugin(AsciiChar const*, PluginFieldCollection const* fc) noexcept override
    {
        int32_t inverse = 0;
        return gdn1_parse_inverse(fc, inverse) ? make(inverse) : nullptr;
    }

    IPluginV2* deserializePlugin(AsciiChar const*, void const* serialData, size_t serialLength) noexcept override
    {
        int32_t inverse = 0;
        if (serialData == nullptr || serialLength != sizeof(inverse))
        {
            gdn1_log_error("serialized data has the wrong size");
            return nullptr;
        }
        std::memcpy(&inverse, serialData, sizeof(inverse));
        return make(inverse);
    }

    void setPluginNamespace(AsciiChar const* pluginNamespace) noexcept override { mNamespace = pluginNamespace; }
    AsciiChar const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }

private:
    IPluginV2* make(int32_t inverse) const noexcept
    {
        try
        {
            return new Gdn1PluginV2(inverse, mNamespace);
        }
        catch (std::exception const&)
        {
            return nullptr;
        }
    }

    std::string mNamespace{kGdn1Namespace};
    PluginField const mField{kGdn1InverseField, nullptr, PluginFieldType::kINT32, 1};
    PluginFieldCollection const mFieldNames{1, &mField};
};

#if NV_TENSORRT_MAJOR >= 10
using RegistryEntry = IPluginCreatorInterface;
RegistryEntry* findRegistered(IPluginRegistry& registry)
{
    return registry.getCreator(kGdn1Name, kGdn1Version, kGdn1Namespace);
}
#else
using RegistryEntry = IPluginCreator;
RegistryEntry* findRegistered(IPluginRegistry& registry)
{
    return registry.getPluginCreator(kGdn1Name, kGdn1Version, kGdn1Namespace);
}
#endif

}  // namespace

// Registers the creator under namespace "roi_trt" (REGISTER_TENSORRT_PLUGIN would use "", where
// onnx-tensorrt never finds a creator that reports "roi_trt"). `logger` is an nvinfer1::ILogger* or
// null. Calling it again is harmless; false if registration failed or another library's GDN1 creator
// already holds the name.
ROI_TRT_EXPORT bool roiTrtInitPlugins(void* logger) noexcept
{
    static Gdn1CreatorV2 creator;
    if (logger != nullptr)
        gdn1_logger() = static_cast<ILogger*>(logger);
    IPluginRegistry* registry = getPluginRegistry();
    if (registry == nullptr)
        return false;
    RegistryEntry& entry = creator;
    if (RegistryEntry* found = findRegistered(*registry))
    {
        if (found != &entry)
            gdn1_log_error("another library already registered roi_trt::GDN1 version 1");
        return found == &entry;
    }
    return registry->registerCreator(entry, kGdn1Namespace);
}

namespace
{
// trtexec --plugins (TensorRT 8.x) only dlopen()s the library, so register at load time too.
bool const registeredAtLoad = roiTrtInitPlugins(nullptr);
}  // namespace
