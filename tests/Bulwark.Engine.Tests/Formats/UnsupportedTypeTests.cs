using Bulwark.Engine.Formats;
using Bulwark.Engine.Model.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Formats;

/// <summary>A file holding a type the engine has no kernel for is refused at load, by the type's name and the tensor's.</summary>
public class UnsupportedTypeTests
{
    public static TheoryData<GgmlType> Types() => new(HostileModelFiles.UnsupportedTypes);

    [Theory]
    [MemberData(nameof(Types))]
    public void LoadingNamesTheTypeAndTheTensor(GgmlType type)
    {
        var dir = Fixtures.NewTempDirectory();
        try
        {
            var path = Path.Combine(dir, "model.gguf");
            File.WriteAllBytes(path, HostileModelFiles.UnsupportedEmbedding(type));
            var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path).Dispose());
            Assert.Contains("token_embd.weight", e.Message);
            Assert.Contains($"weight type {type} is not supported", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
