using Bulwark.Engine.Formats.Gguf;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Formats;

internal static class GgufTestFiles
{
    public static string Write(GgufWriter writer, string name = "test.gguf")
    {
        var path = Path.Combine(Fixtures.NewTempDirectory("gguf"), name);
        writer.WriteTo(path);
        return path;
    }

    public static string WriteBytes(byte[] bytes, string name = "test.gguf")
    {
        var path = Path.Combine(Fixtures.NewTempDirectory("gguf"), name);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
