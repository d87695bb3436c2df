// GDN1 as a TensorRT 10/11 plugin (IPluginV3 with the V3One core/build/runtime capabilities and
// IPluginCreatorV3One). Its one field, `inverse`, is also its serialized form.
//
// The creator is registered under namespace "roi_trt" when the library is loaded (Triton's TensorRT backend only
// dlopen()s the libraries named in plugins=, as do trtexec --staticPlugins and ctypes), again harmlessly from
// roiTrtInitPlugins, and handed to TensorRT's loadLibrary (trtexec --dynamicPlugins) through getCreators.
#include "gdn1_plugin_common.h"

namespace
{

using namespace nvinfer1;
using namespace roi_trt;

class Gdn1PluginV3 final : public IPluginV3,
                           public IPluginV3OneCore,
                           public IPluginV3OneBuild,
                           public IPluginV3OneRuntime
{
public:
    explicit Gdn1PluginV3(int32_t inverse)
        : mInverse(inverse)
    {
    }
    Gdn1PluginV3(Gdn1PluginV3 const&) = delete;  // mField points into this object
    Gdn1PluginV3& operator=(Gdn1PluginV3 const&) = delete;

    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    IPluginV3* clone() noexcept override
    {
        try
        {
            return new Gdn1PluginV3(mInverse);
        }
        catch (std::exception const& e)
        {
            gdn1_log_error("cannot create the plugin", e.what());
            return nullptr;
        }
    }

    // Core
    AsciiChar const* getPluginName() const noexcept override { return kGdn1Name; }
    AsciiChar const* getPluginVersion() const noexcept override { return kGdn1Version; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kGdn1Namespace; }

    // Build
    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const*,
        int32_t nbOutputs) noexcept override
    {
        return gdn1_counts_ok(nbInputs, nbOutputs) && gdn1_shapes_ok(in[0].desc.dims, in[1].desc.dims, in[2].desc.dims)
            ? 0
            : -1;
    }

    int32_t getOutputDataTypes(
        DataType* outputTypes, int32_t nbOutputs, DataType const*, int32_t nbInputs) const noexcept override
    {
        if (!gdn1_counts_ok(nbInputs, nbOutputs))
            return -1;
        outputTypes[0] = DataType::kFLOAT;
        return 0;
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t, DimsExprs* outputs,
        int32_t nbOutputs, IExprBuilder&) noexcept override
    {
        if (!gdn1_counts_ok(nbInputs, nbOutputs))
            return -1;
        outputs[0] = inputs[0];
        return 0;
    }

    bool supportsFormatCombination(
        int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override
    {
        return nbInputs == 3 && nbOutputs == 1 && gdn1_supports(inOut[pos].desc.type, inOut[pos].desc.format);
    }

    int32_t getNbOutputs() const noexcept override { return 1; }

    // Runtime
    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const*, int32_t nbOutputs)
        noexcept override
    {
        return gdn1_counts_ok(nbInputs, nbOutputs) && gdn1_shapes_ok(in[0].dims, in[1].dims, in[2].dims) ? 0 : -1;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*, void const* const* inputs,
        void* const* outputs, void*, cudaStream_t stream) noexcept override
    {
        return gdn1_enqueue(inputDesc, inputs, outputs, mInverse, stream);
    }

    IPluginV3* attachToContext(IPluginResourceContext*) noexcept override { return clone(); }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &mFields; }

private:
    int32_t mInverse;
    PluginField const mField{kGdn1InverseField, &mInverse, PluginFieldType::kINT32, 1};
    PluginFieldCollection const mFields{1, &mField};
};

class Gdn1CreatorV3 final : public IPluginCreatorV3One
{
public:
    // The build phase gets the ONNX node's fields, the runtime phase getFieldsToSerialize()'s: the same one.
    IPluginV3* createPlugin(AsciiChar const*, PluginFieldCollection const* fc, TensorRTPhase) noexcept override
    {
        int32_t inverse = 0;
        if (!gdn1_parse_inverse(fc, inverse))
            return nullptr;
        try
        {
            return new Gdn1PluginV3(inverse);
        }
        catch (std::exception const& e)
        {
            gdn1_log_error("cannot create the plugin", e.what());
            return nullptr;
        }
    }

    PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldNames; }
    AsciiChar const* getPluginName() const noexcept override { return kGdn1Name; }
    AsciiChar const* getPluginVersion() const noexcept override { return kGdn1Version; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kGdn1Namespace; }

private:
    PluginField const mField{kGdn1InverseField, nullptr, PluginFieldType::kINT32, 1};
    PluginFieldCollection const mFieldNames{1, &mField};
};

Gdn1CreatorV3& creator()
{
    static Gdn1CreatorV3 instance;
    return instance;
}

// At load time: the only registration Triton's TensorRT backend gives a plugin library.
bool const registeredAtLoad = gdn1_register(creator());

}  // namespace

// See gdn1_init.
ROI_TRT_EXPORT bool roiTrtInitPlugins(void* logger) noexcept
{
    return gdn1_init(logger, creator());
}

// Entry points of TensorRT's own plugin-library loading (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins):
// loadLibrary registers the creators it gets here, after the load-time registration steps back.
ROI_TRT_EXPORT IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept
{
    static IPluginCreatorInterface* const creators[] = {&creator()};
    gdn1_hand_over(creator());
    nbCreators = 1;
    return creators;
}

ROI_TRT_EXPORT void setLoggerFinder(ILoggerFinder* finder) noexcept
{
    gdn1_logger_finder() = finder;
}
