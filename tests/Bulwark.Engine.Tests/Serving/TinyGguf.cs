using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>The shape of a small random decoder written as GGUF for executor tests.</summary>
internal sealed record TinyModelSpec(
    string Architecture = "llama",
    int Dim = 32,
    int Layers = 2,
    int Heads = 4,
    int KvHeads = 2,
    int FeedForward = 48,
    int Vocab = 64,
    int Context = 128,
    int Seed = 1);

/// <summary>
/// Writes a small Llama-family GGUF with deterministic random F32 weights (llama.cpp's metadata
/// keys and tensor names), so tests run the real loader and forward pass without a model download.
/// </summary>
internal static class TinyGguf
{
    public static string Write(TinyModelSpec spec)
    {
        var random = new Random(spec.Seed);
        var arch = spec.Architecture;
        var headDim = spec.Dim / spec.Heads;
        var q = spec.Heads * headDim;
        var kv = spec.KvHeads * headDim;
        var writer = new GgufWriter()
            .Add("general.architecture", arch)
            .Add($"{arch}.embedding_length", spec.Dim)
            .Add($"{arch}.block_count", spec.Layers)
            .Add($"{arch}.attention.head_count", spec.Heads)
            .Add($"{arch}.attention.head_count_kv", spec.KvHeads)
            .Add($"{arch}.feed_forward_length", spec.FeedForward)
            .Add($"{arch}.context_length", spec.Context)
            .Add($"{arch}.attention.layer_norm_rms_epsilon", 1e-5f)
            .Add($"{arch}.rope.freq_base", 10000f);

        void Matrix(string name, int rows, int columns) =>
            writer.AddTensor(name, GgmlType.F32, [columns, rows], Floats(random, rows * columns, 1f / MathF.Sqrt(columns), 0f));
        void Vector(string name, int length, float spread, float center) =>
            writer.AddTensor(name, GgmlType.F32, [length], Floats(random, length, spread, center));

        // Embeddings of unit scale so logits vary clearly between tokens.
        writer.AddTensor("token_embd.weight", GgmlType.F32, [spec.Dim, spec.Vocab], Floats(random, spec.Vocab * spec.Dim, 1f, 0f));
        for (var l = 0; l < spec.Layers; l++)
        {
            string N(string part) => TensorNames.Gguf.Layer(l, part);
            Vector(N(TensorNames.AttentionNorm), spec.Dim, 0.2f, 1f);
            Matrix(N(TensorNames.Query), q, spec.Dim);
            Matrix(N(TensorNames.Key), kv, spec.Dim);
            Matrix(N(TensorNames.Value), kv, spec.Dim);
            Matrix(N(TensorNames.AttentionOutput), spec.Dim, q);
            if (arch == "qwen2")
            {
                Vector(N(TensorNames.QueryBias), q, 0.5f, 0f);
                Vector(N(TensorNames.KeyBias), kv, 0.5f, 0f);
                Vector(N(TensorNames.ValueBias), kv, 0.5f, 0f);
            }
            if (arch == "qwen3")
            {
                Vector(N(TensorNames.QueryNorm), headDim, 0.2f, 1f);
                Vector(N(TensorNames.KeyNorm), headDim, 0.2f, 1f);
            }
            Vector(N(TensorNames.FeedForwardNorm), spec.Dim, 0.2f, 1f);
            Matrix(N(TensorNames.Gate), spec.FeedForward, spec.Dim);
            Matrix(N(TensorNames.Up), spec.FeedForward, spec.Dim);
            Matrix(N(TensorNames.Down), spec.Dim, spec.FeedForward);
        }
        Vector("output_norm.weight", spec.Dim, 0.2f, 1f);
        Matrix("output.weight", spec.Vocab, spec.Dim);

        var path = Path.Combine(Fixtures.NewTempDirectory("tiny-gguf"), $"{arch}.gguf");
        writer.WriteTo(path);
        return path;
    }

    public static LlamaModel Load(TinyModelSpec spec) => GgufModelLoader.Load(Write(spec));

    private static byte[] Floats(Random random, int count, float spread, float center)
    {
        var bytes = new byte[count * sizeof(float)];
        var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
        for (var i = 0; i < count; i++)
            floats[i] = center + spread * (2f * random.NextSingle() - 1f) * 1.7f;
        return bytes;
    }
}
