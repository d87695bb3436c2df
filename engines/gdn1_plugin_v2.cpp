// GDN1 as a TensorRT 8.x plugin (IPluginV2DynamicExt + IPluginCreator): the Jetson Nano's path.
// TensorRT 10/11 still load it (deprecated there; gdn1_plugin_v3.cpp is their native glue).
//
// The creator is registered under namespace "roi_trt" when the library is loaded (trtexec --plugins, Triton's
// plugins=, ctypes), again harmlessly from roiTrtInitPlugins, and from TensorRT 8.6 on handed to TensorRT's
// loadLibrary through getPluginCreators.
#include "gdn1_plugin_common.h"

#include <string>

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
        catch (std::exception const& e)
        {
            gdn1_log_error("cannot create the plugin", e.what());
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

    // void here: what it logs, enqueue checks again and fails on
    void configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const*,
        int32_t nbOutputs) noexcept override
    {
        if (gdn1_counts_ok(nbInputs, nbOutputs))
            gdn1_shapes_ok(in[0].desc.dims, in[1].desc.dims, in[2].desc.dims);
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
        catch (std::exception const& e)
        {
            gdn1_log_error("cannot create the plugin", e.what());
            return nullptr;
        }
    }

    std::string mNamespace{kGdn1Namespace};
    PluginField const mField{kGdn1InverseField, nullptr, PluginFieldType::kINT32, 1};
    PluginFieldCollection const mFieldNames{1, &mField};
};

Gdn1CreatorV2& creator()
{
    static Gdn1CreatorV2 instance;
    return instance;
}

// At load time: trtexec --plugins (TensorRT 8.x) and Triton's plugins= only dlopen() the library.
bool const registeredAtLoad = gdn1_register(creator());

}  // namespace

// See gdn1_init.
ROI_TRT_EXPORT bool roiTrtInitPlugins(void* logger) noexcept
{
    return gdn1_init(logger, creator());
}

#if ROI_TRT_HAS_LOAD_LIBRARY
// Entry points of TensorRT's own plugin-library loading (IPluginRegistry::loadLibrary, from 8.6): loadLibrary
// registers the creators it gets here, after the load-time registration steps back.
ROI_TRT_EXPORT IPluginCreator* const* getPluginCreators(int32_t& nbCreators) noexcept
{
    static IPluginCreator* const creators[] = {&creator()};
    gdn1_hand_over(creator());
    nbCreators = 1;
    return creators;
}

ROI_TRT_EXPORT void setLoggerFinder(ILoggerFinder* finder) noexcept
{
    gdn1_logger_finder() = finder;
}
#endif
