using System.Text;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Model.Config;
using Bulwark.Testing;
using CsCheck;

namespace Bulwark.Engine.Tests.Formats;

/// <summary>
/// A cheap in-suite fuzzer: random byte overwrites and truncations of small valid files. Every
/// mutant must either open (and then every tensor's bytes must lie inside the file) or raise
/// <see cref="ModelFormatException"/>; any other exception is a reader bug. CsCheck shrinks a
/// failure to the smallest mutation and prints its seed.
/// </summary>
public class ReaderMutationTests
{
    /// <summary>Up to 6 (position, value) overwrites, then a cut at some length.</summary>
    private static Gen<(int[] Positions, byte[] Values, int Cut)> Mutations(int length) =>
        Gen.Select(Gen.Int[0, length - 1].Array[1, 6], Gen.Byte.Array[6], Gen.Int[0, length]);

    private static byte[] Apply(byte[] valid, (int[] Positions, byte[] Values, int Cut) m)
    {
        var bytes = (byte[])valid.Clone();
        for (var i = 0; i < m.Positions.Length; i++) bytes[m.Positions[i]] = m.Values[i];
        // Cut only sometimes, so most mutants keep their full length.
        return m.Cut % 4 == 0 ? bytes[..m.Cut] : bytes;
    }

    private static void OpensOrRefuses(string folder, byte[] bytes, string extension, Action<string> read)
    {
        var path = Path.Combine(folder, Guid.NewGuid().ToString("N") + extension);
        File.WriteAllBytes(path, bytes);
        try
        {
            read(path);
        }
        catch (ModelFormatException)
        {
            // The wanted answer to a broken file.
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void MutatedGgufFilesOpenOrAreRefused()
    {
        var valid = HostileModelFiles.ValidGguf();
        var folder = Fixtures.NewTempDirectory("gguf-mutants");
        Mutations(valid.Length).Sample(m => OpensOrRefuses(folder, Apply(valid, m), ".gguf", path =>
        {
            using var file = GgufFile.Open(path);
            var length = new FileInfo(path).Length;
            foreach (var t in file.Tensors)
                Assert.True(t.FileOffset >= file.DataOffset && t.FileOffset + t.ByteSize <= length, $"{t.Name} escapes the file");
        }), iter: 1000);
    }

    [Fact]
    public void MutatedSafetensorsFilesOpenOrAreRefused()
    {
        var valid = HostileModelFiles.ValidSafetensors();
        var folder = Fixtures.NewTempDirectory("safetensors-mutants");
        Mutations(valid.Length).Sample(m => OpensOrRefuses(folder, Apply(valid, m), ".safetensors", path =>
        {
            using var file = SafetensorsFile.Open(path);
            var length = new FileInfo(path).Length;
            foreach (var t in file.Tensors)
                Assert.True(t.FileOffset >= file.DataOffset && t.FileOffset + t.ByteSize <= length, $"{t.Name} escapes the file");
        }), iter: 1000);
    }

    [Fact]
    public void MutatedConfigsParseOrAreRefused()
    {
        var valid = Encoding.UTF8.GetBytes("""{"model_type":"qwen3","architectures":["Qwen3ForCausalLM"],"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"intermediate_size":96,"vocab_size":300,"max_position_embeddings":512,"rope_parameters":{"rope_theta":1000000.0,"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":128}}""");
        Assert.Equal(ModelArchitecture.Qwen3, HfConfig.Parse(valid, "config.json").Architecture);
        Mutations(valid.Length).Sample(m =>
        {
            try
            {
                HfConfig.Parse(Apply(valid, m), "config.json");
            }
            catch (ModelFormatException)
            {
            }
        }, iter: 1000);
    }
}
