using Bulwark.Server.Registry;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Registry;

/// <summary>A registry in a fresh temporary data directory, with helpers to make model files.</summary>
internal sealed class RegistryTestBed
{
    public RegistryTestBed(string name)
    {
        Root = Fixtures.NewTempDirectory(name);
        Data = DataDirectory.Resolve(Path.Combine(Root, "data")).EnsureCreated();
        Registry = ModelRegistry.Open(Data);
    }

    public string Root { get; }
    public DataDirectory Data { get; }
    public ModelRegistry Registry { get; }

    /// <summary>A fake GGUF-named file with deterministic content (the registry never parses weights).</summary>
    public string MakeFile(string fileName, int size, int seed = 1)
    {
        var path = Path.Combine(Root, "src-" + Guid.NewGuid().ToString("N")[..8], fileName);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>A Hugging Face–style folder: config.json, tokenizer.json and two safetensors shards.</summary>
    public string MakeHfFolder(int seed = 1)
    {
        var dir = Path.Combine(Root, "hf-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type":"llama","hidden_size":64}""");
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{}");
        var rng = new Random(seed);
        foreach (var shard in new[] { "model-00001-of-00002.safetensors", "sub/model-00002-of-00002.safetensors" })
        {
            var bytes = new byte[4096 + rng.Next(100)];
            rng.NextBytes(bytes);
            File.WriteAllBytes(Path.Combine(dir, shard), bytes);
        }
        return dir;
    }
}
