// GDN1 as a TensorRT 10/11 plugin (IPluginV3 with the V3One core/build/runtime capabilities and
// IPluginCreatorV3One). Its one field, `inverse`, is also its serialized form.
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
        catch (std::exception const&)
        {
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
        if (nbInputs != 3 || nbOutputs != 1)
            return -1;
        return failed(gdn1_shape_error(in[0].desc.dims, in[1].desc.dims, in[2].desc.dims));
    }

    int32_t getOutputDataTypes(
        DataType* outputTypes, int32_t nbOutputs, DataType const*, int32_t) const noexcept override
    {
        if (nbOutputs != 1)
            return -1;
        outputTypes[0] = DataType::kFLOAT;
        return 0;
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t, DimsExprs* outputs,
        int32_t nbOutputs, IExprBuilder&) noexcept override
    {
        if (nbInputs != 3 || nbOutputs != 1)
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
    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const*, int32_t) noexcept
        override
    {
        if (nbInputs != 3)
            return -1;
        return failed(gdn1_shape_error(in[0].dims, in[1].dims, in[2].dims));
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*, void const* const* inputs,
        void* const* outputs, void*, cudaStream_t stream) noexcept override
    {
        return gdn1_enqueue(inputDesc, inputs, outputs, mInverse, stream);
    }

    IPluginV3* attachToContext(IPluginResourceContext*) noexcept override { return clone(); }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &mFields; }

private:
    static int32_t failed(char const* error)
    {
        if (error == nullptr)
            return 0;
        gdn1_log_error(error);
        return -1;
    }

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
        catch (std::exception const&)
        {
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

IPluginCreatorInterface& creator()
{
    static Gdn1CreatorV3 instance;
    return instance;
}

}  // namespace

// Registers the creator under namespace "roi_trt" (REGISTER_TENSORRT_PLUGIN would use "", where
// onnx-tensorrt never finds a creator that reports "roi_trt"). `logger` is an nvinfer1::ILogger* or
// null. Calling it again, or after TensorRT loaded the library itself, is harmless; false if
// registration failed or another library's GDN1 creator already holds the name.
ROI_TRT_EXPORT bool roiTrtInitPlugins(void* logger) noexcept
{
    if (logger != nullptr)
        gdn1_logger() = static_cast<ILogger*>(logger);
    IPluginRegistry* registry = getPluginRegistry();
    if (registry == nullptr)
        return false;
    if (IPluginCreatorInterface* found = registry->getCreator(kGdn1Name, kGdn1Version, kGdn1Namespace))
    {
        if (found != &creator())
            gdn1_log_error("another library already registered roi_trt::GDN1 version 1");
        return found == &creator();
    }
    return registry->registerCreator(creator(), kGdn1Namespace);
}

// Entry points of TensorRT's own plugin-library loading (IPluginRegistry::loadLibrary, trtexec
// --dynamicPlugins): the registry asks for the creators and hands over its logger.
ROI_TRT_EXPORT IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept
{
    static IPluginCreatorInterface* const creators[] = {&creator()};
    nbCreators = 1;
    return creators;
}

ROI_TRT_EXPORT void setLoggerFinder(ILoggerFinder* finder) noexcept
{
    if (finder != nullptr && gdn1_logger() == nullptr)
        gdn1_logger() = finder->findLogger();
}
