using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>Synthetic models written into a fresh temporary folder, named after their architecture.</summary>
internal static class SyntheticGguf
{
    public static string Write(SyntheticModelSpec spec)
    {
        var path = Path.Combine(Fixtures.NewTempDirectory("synthetic-gguf"), $"{spec.Architecture}.gguf");
        SyntheticModel.WriteGguf(spec, path);
        return path;
    }

    public static LlamaModel Load(SyntheticModelSpec spec) => GgufModelLoader.Load(Write(spec));
}
