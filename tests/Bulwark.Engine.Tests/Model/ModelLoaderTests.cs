using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

public class ModelLoaderTests
{
    private static string Gguf => Fixtures.PathOf("model-260k", "stories260K-f32.gguf");

    private static string FolderWith(params (string Name, byte[] Bytes)[] files)
    {
        var folder = Fixtures.NewTempDirectory("loader");
        foreach (var (name, bytes) in files) File.WriteAllBytes(Path.Combine(folder, name), bytes);
        return folder;
    }

    private static ModelFormatException Refused(string path) => Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path).Dispose());

    private static void AssertPickleRefusal(ModelFormatException e)
    {
        Assert.Contains("runs code chosen by whoever wrote the file", e.Message);
        Assert.Contains("save_pretrained('OUT', safe_serialization=True)", e.Message);
        Assert.Contains("huggingface-cli download", e.Message);
    }

    [FixtureFact]
    public void GgufFileLoadsWithAdjacentPairRope()
    {
        using var model = ModelLoader.Load(Gguf);
        Assert.Equal((ModelArchitecture.Llama, RopeLayout.AdjacentPairs), (model.Config.Architecture, model.Config.RopeLayout));
    }

    [FixtureFact]
    public void HuggingFaceFolderLoadsWithRotateHalfRope()
    {
        using var model = ModelLoader.Load(Fixtures.PathOf("model-260k", "hf"));
        Assert.Equal((ModelArchitecture.Llama, RopeLayout.RotateHalf), (model.Config.Architecture, model.Config.RopeLayout));
    }

    [FixtureFact]
    public void GgufIsRecognisedByItsMagicWhateverItsName()
    {
        var folder = FolderWith(("ggml-model.bin", File.ReadAllBytes(Gguf)));
        using var model = ModelLoader.Load(Path.Combine(folder, "ggml-model.bin"));
        Assert.Equal(5, model.Config.LayerCount);
        // A folder whose only weights are one GGUF file (as the registry stores them) loads it.
        using var fromFolder = ModelLoader.Load(FolderWith(("m.gguf", File.ReadAllBytes(Gguf)), ("config.json", "{}"u8.ToArray())));
        Assert.Equal(5, fromFolder.Config.LayerCount);
    }

    [Theory]
    [InlineData("pytorch_model.bin")]
    [InlineData("model.pt")]
    [InlineData("model.pth")]
    [InlineData("weights.pkl")]
    [InlineData("weights.pickle")]
    [InlineData("last.CKPT")]
    public void PickleFilesAreRefusedByNameWithTheWayToConvert(string name)
    {
        var folder = FolderWith((name, "not even a pickle"u8.ToArray()));
        var e = Refused(Path.Combine(folder, name));
        Assert.StartsWith($"{name}: format: this is a pickle-based checkpoint", e.Message);
        AssertPickleRefusal(e);
    }

    [Fact]
    public void PickleContentIsRefusedWhateverTheName()
    {
        // Protocol 2 pickle of a dict, as torch.save wrote before 1.6.
        var raw = FolderWith(("weights.data", [0x80, 0x02, 0x7D, 0x71, 0x00, 0x2E]));
        AssertPickleRefusal(Refused(Path.Combine(raw, "weights.data")));
        // torch.save since 1.6: a zip whose first entry is archive/data.pkl.
        var name = "archive/data.pkl"u8.ToArray();
        var zip = new byte[30 + name.Length + 8];
        "PK\x03\x04"u8.CopyTo(zip);
        zip[26] = (byte)name.Length;
        name.CopyTo(zip, 30);
        var zipped = FolderWith(("model.safetensors", zip));
        AssertPickleRefusal(Refused(Path.Combine(zipped, "model.safetensors")));
    }

    [Fact]
    public void FolderWithOnlyPickleWeightsIsRefusedNamingThem()
    {
        var folder = FolderWith(("config.json", "{}"u8.ToArray()), ("pytorch_model-00001-of-00002.bin", [1]), ("pytorch_model-00002-of-00002.bin", [2]));
        var e = Refused(folder);
        Assert.Contains("the only weights here are pickle files (pytorch_model-00001-of-00002.bin, pytorch_model-00002-of-00002.bin)", e.Message);
        AssertPickleRefusal(e);
    }

    [Fact]
    public void SafetensorsFolderWithoutConfigIsRefused()
    {
        var folder = FolderWith(("model.safetensors", Formats.SafetensorsBytes.Build([Formats.SafetensorsBytes.F32("a", [1], 1)])));
        Assert.Contains("config.json: is missing", Refused(folder).Message);
    }

    [Fact]
    public void PathsThatAreNotModelsAreRefusedWithWhatWasExpected()
    {
        var folder = FolderWith(("notes.txt", "hello"u8.ToArray()), ("model.safetensors.bak", [0]));
        Assert.Contains("holds no model weights (expected a .gguf file or a Hugging Face folder", Refused(folder).Message);
        Assert.Contains("is neither GGUF nor a model folder", Refused(Path.Combine(folder, "notes.txt")).Message);
        Assert.Contains("does not exist", Refused(Path.Combine(folder, "missing.gguf")).Message);
        var lone = FolderWith(("model.safetensors", Formats.SafetensorsBytes.Build([Formats.SafetensorsBytes.F32("a", [1], 1)])));
        Assert.Contains("pass the folder that holds both", Refused(Path.Combine(lone, "model.safetensors")).Message);
        Assert.Contains("holds 2 .gguf files", Refused(FolderWith(("a.gguf", [0]), ("b.gguf", [0]))).Message);
    }
}
