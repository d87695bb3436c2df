// A stand-in for libnvinfer in the ABI test of tests/test_gdn1_plugin.py, built against NVIDIA's TensorRT 10/11
// headers. It exports what the GDN1 plugin library imports from libnvinfer (getPluginRegistry, getLogger),
// implements the headers' IPluginRegistry and ILogger interfaces, and records what the plugin registers and logs;
// the harness* functions let the test read that and call the registered plugin as TensorRT would.
//
// It is not TensorRT: it does only what the headers document (registerCreator refuses a name already taken,
// getCreator finds a creator by name, version and the namespace it was registered under) and nothing of
// TensorRT's undocumented behaviour (loadLibrary is not implemented).
#include <NvInferRuntime.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // the V2 creator type and registry methods

#define HARNESS_EXPORT extern "C" __attribute__((visibility("default")))

namespace
{

using namespace nvinfer1;

struct Message
{
    int severity;
    std::string text;
};

class RecordingLogger final : public ILogger
{
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        messages.push_back({static_cast<int>(severity), msg});
    }
    std::vector<Message> messages;
};

class Finder final : public ILoggerFinder
{
public:
    ILogger* findLogger() noexcept override { return &logger; }
    RecordingLogger logger;
};

// Name, version and namespace as the creator reports them, by its interface kind.
bool describe(IPluginCreatorInterface& creator, std::string& name, std::string& version, std::string& ns)
{
    std::string const kind = creator.getInterfaceInfo().kind;
    if (kind == "PLUGIN CREATOR_V3ONE")
    {
        auto& v3 = static_cast<IPluginCreatorV3One&>(creator);
        name = v3.getPluginName(), version = v3.getPluginVersion(), ns = v3.getPluginNamespace();
        return true;
    }
    if (kind == "PLUGIN CREATOR_V1")
    {
        auto& v2 = static_cast<IPluginCreator&>(creator);
        name = v2.getPluginName(), version = v2.getPluginVersion(), ns = v2.getPluginNamespace();
        return true;
    }
    return false;
}

class RecordingRegistry final : public IPluginRegistry
{
public:
    struct Entry
    {
        IPluginCreatorInterface* creator;
        std::string name, version, ns;  // ns: the namespace it was registered under
    };

    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const pluginNamespace) noexcept override
    {
        ++registerCalls;
        Entry entry{&creator, "", "", pluginNamespace};
        std::string reported;
        if (!describe(creator, entry.name, entry.version, reported) || find(entry.name, entry.version, entry.ns))
            return false;
        entries.push_back(entry);
        return true;
    }

    IPluginCreatorInterface* getCreator(AsciiChar const* const pluginName, AsciiChar const* const pluginVersion,
        AsciiChar const* const pluginNamespace) noexcept override
    {
        Entry const* entry = find(pluginName, pluginVersion, pluginNamespace);
        return entry != nullptr ? entry->creator : nullptr;
    }

    bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept override
    {
        ++deregisterCalls;
        for (auto it = entries.begin(); it != entries.end(); ++it)
            if (it->creator == &creator)
            {
                entries.erase(it);
                return true;
            }
        return false;
    }

    IPluginCreatorInterface* const* getAllCreators(int32_t* const numCreators) const noexcept override
    {
        list.clear();
        for (Entry const& entry : entries)
            list.push_back(entry.creator);
        *numCreators = static_cast<int32_t>(list.size());
        return list.empty() ? nullptr : list.data();
    }

#if NV_TENSORRT_MAJOR > 10 || NV_TENSORRT_MINOR >= 10
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const numCreators) noexcept override
    {
        return getAllCreators(numCreators);
    }
#endif

#if NV_TENSORRT_MAJOR < 11  // the V2 methods, gone in 11: not what either glue calls on 10+
    bool registerCreator(IPluginCreator& creator, AsciiChar const* const pluginNamespace) noexcept override
    {
        return registerCreator(static_cast<IPluginCreatorInterface&>(creator), pluginNamespace);
    }
    IPluginCreator* const* getPluginCreatorList(int32_t* const numCreators) const noexcept override
    {
        *numCreators = 0;
        return nullptr;
    }
    IPluginCreator* getPluginCreator(AsciiChar const* const, AsciiChar const* const, AsciiChar const* const) noexcept
        override
    {
        return nullptr;
    }
    bool deregisterCreator(IPluginCreator const& creator) noexcept override
    {
        return deregisterCreator(static_cast<IPluginCreatorInterface const&>(creator));
    }
#endif

    void setErrorRecorder(IErrorRecorder* const) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
    bool isParentSearchEnabled() const override { return false; }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(AsciiChar const*) noexcept override { return nullptr; }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
    IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override { return nullptr; }
    int32_t releasePluginResource(AsciiChar const*) noexcept override { return -1; }

    Entry const* find(std::string const& name, std::string const& version, std::string const& ns) const
    {
        for (Entry const& entry : entries)
            if (entry.name == name && entry.version == version && entry.ns == ns)
                return &entry;
        return nullptr;
    }

    std::vector<Entry> entries;
    mutable std::vector<IPluginCreatorInterface*> list;
    int registerCalls = 0;
    int deregisterCalls = 0;
};

RecordingRegistry registry;
RecordingLogger globalLogger;  // what getLogger() returns while enabled
RecordingLogger givenLogger;   // for roiTrtInitPlugins(logger)
Finder finder;                 // for setLoggerFinder
bool globalLoggerEnabled = false;

RecordingLogger* loggerNamed(char const* which)
{
    std::string const name = which;
    return name == "global" ? &globalLogger : name == "given" ? &givenLogger : name == "finder" ? &finder.logger
                                                                                                 : nullptr;
}

IPluginCreatorV3One* gdn1Creator()
{
    IPluginCreatorInterface* creator = registry.getCreator("GDN1", "1", "roi_trt");
    if (creator == nullptr || std::strcmp(creator->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0)
        return nullptr;
    return static_cast<IPluginCreatorV3One*>(creator);
}

IPluginV3* createGdn1(int32_t inverse)
{
    IPluginCreatorV3One* creator = gdn1Creator();
    if (creator == nullptr)
        return nullptr;
    PluginField field{"inverse", &inverse, PluginFieldType::kINT32, 1};
    PluginFieldCollection fields{1, &field};
    return creator->createPlugin("gdn", &fields, TensorRTPhase::kBUILD);
}

Dims dims(std::vector<int64_t> const& d)
{
    Dims out{};
    out.nbDims = static_cast<int32_t>(d.size());
    for (size_t i = 0; i < d.size(); ++i)
        out.d[i] = d[i];
    return out;
}

}  // namespace

HARNESS_EXPORT IPluginRegistry* getPluginRegistry() noexcept
{
    return &registry;
}

HARNESS_EXPORT ILogger* getLogger() noexcept
{
    return globalLoggerEnabled ? &globalLogger : nullptr;
}

HARNESS_EXPORT void harnessEnableGlobalLogger(int enabled)
{
    globalLoggerEnabled = enabled != 0;
}

// Pointers the test hands to the plugin library's roiTrtInitPlugins and setLoggerFinder.
HARNESS_EXPORT void* harnessGivenLogger()
{
    return static_cast<ILogger*>(&givenLogger);
}

HARNESS_EXPORT void* harnessFinder()
{
    return static_cast<ILoggerFinder*>(&finder);
}

HARNESS_EXPORT int harnessRegisterCalls()
{
    return registry.registerCalls;
}

HARNESS_EXPORT int harnessDeregisterCalls()
{
    return registry.deregisterCalls;
}

HARNESS_EXPORT int harnessEntries()
{
    return static_cast<int>(registry.entries.size());
}

// Entry i as "name version registered-namespace reported-namespace kind".
HARNESS_EXPORT int harnessDescribeEntry(int i, char* out, int size)
{
    RecordingRegistry::Entry const& entry = registry.entries.at(i);
    std::string name, version, reported;
    describe(*entry.creator, name, version, reported);
    std::string const line = name + " " + version + " " + entry.ns + " " + reported + " "
        + entry.creator->getInterfaceInfo().kind;
    return std::snprintf(out, size, "%s", line.c_str());
}

HARNESS_EXPORT void* harnessEntryCreator(int i)
{
    return registry.entries.at(i).creator;
}

// Registers a creator the way a caller of IPluginRegistry does (the test: as loadLibrary would with getCreators').
HARNESS_EXPORT int harnessRegister(void* creator, char const* ns)
{
    return registry.registerCreator(*static_cast<IPluginCreatorInterface*>(creator), ns);
}

HARNESS_EXPORT int harnessMessages(char const* logger)
{
    return static_cast<int>(loggerNamed(logger)->messages.size());
}

HARNESS_EXPORT int harnessMessage(char const* logger, int i, char* out, int size)
{
    Message const& message = loggerNamed(logger)->messages.at(i);
    std::snprintf(out, size, "%s", message.text.c_str());
    return message.severity;
}

// The registered GDN1 V3 plugin, called as TensorRT's builder and runtime call it. harnessCreate: 0 if the creator
// made a plugin, else -1; the others: the plugin's status (0: success), or -100 if no plugin could be made.
HARNESS_EXPORT int harnessCreate(int inverse)
{
    IPluginV3* plugin = createGdn1(inverse);
    delete plugin;
    return plugin != nullptr ? 0 : -1;
}

HARNESS_EXPORT int harnessConfigure(int nbInputs, int channels)
{
    IPluginV3* plugin = createGdn1(0);
    if (plugin == nullptr)
        return -100;
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    DynamicPluginTensorDesc in[3]{}, out[1]{};
    in[0].desc.dims = dims({1, 16, 8, 8});
    in[1].desc.dims = dims({channels, channels});
    in[2].desc.dims = dims({channels});
    out[0].desc.dims = in[0].desc.dims;
    int const status = build->configurePlugin(in, nbInputs, out, 1);
    delete plugin;
    return status;
}

// enqueue with x [1, 16, H, W] (xDims 4) or [16, H, W] (xDims 3) and the given channel count in gamma and beta.
// The data pointers point to host memory: only a call that fails before or at the kernel launch is meaningful.
HARNESS_EXPORT int harnessEnqueue(int xDims, int channels)
{
    IPluginV3* plugin = createGdn1(0);
    if (plugin == nullptr)
        return -100;
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginTensorDesc in[3]{}, out[1]{};
    in[0].dims = xDims == 4 ? dims({1, 16, 4, 4}) : dims({16, 4, 4});
    in[1].dims = dims({channels, channels});
    in[2].dims = dims({channels});
    out[0].dims = in[0].dims;
    static float data[4][16 * 16];
    void const* inputs[3] = {data[0], data[1], data[2]};
    void* outputs[1] = {data[3]};
    int const status = runtime->enqueue(in, out, inputs, outputs, nullptr, nullptr);
    delete plugin;
    return status;
}
