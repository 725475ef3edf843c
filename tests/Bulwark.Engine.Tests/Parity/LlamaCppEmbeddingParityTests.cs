using Bulwark.Engine.Model;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Embeddings;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;
using LLama.Native;
using Xunit.Abstractions;

namespace Bulwark.Engine.Tests.Parity;

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0) embeds the same synthetic GGUF with the pooling the file declares: our
/// engine's vectors, batched through its steps, point the same way. The bar is cosine ≥ 0.9999 for F32
/// weights (the same arithmetic in another order) and ≥ 0.999 for Q8_0, where llama.cpp also rounds each
/// activation row to 8 bits before the dot products, as the quantized logits' parity allows.
/// </summary>
public class LlamaCppEmbeddingParityTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("llama", PoolingType.Mean, GgmlType.F32)]
    [InlineData("qwen3", PoolingType.Last, GgmlType.F32)]
    [InlineData("qwen2", PoolingType.Mean, GgmlType.F32)]
    [InlineData("llama", PoolingType.Last, GgmlType.Q8_0)]
    [InlineData("qwen3", PoolingType.Mean, GgmlType.Q8_0)]
    [InlineData("llama", PoolingType.Cls, GgmlType.F32)]
    // cls (position 0's state) too: llama.cpp computes it for these decoders with the same causal attention.
    public async Task VectorsPointWhereLlamaCppsDo(string arch, PoolingType pooling, GgmlType type)
    {
        var spec = new SyntheticModelSpec { Architecture = arch, Pooling = pooling, DType = type, Dim = 128, FeedForward = 256, Heads = 4, KvHeads = 2, Seed = 2026 };
        var dir = Fixtures.NewTempDirectory();
        var path = Path.Combine(dir, "embed.gguf");
        SyntheticModel.WriteGguf(spec, path);
        var random = new Random(41);
        var inputs = new[] { 1, 7, 33, 90 }.Select(n => Enumerable.Range(0, n).Select(_ => random.Next(3, spec.Vocab)).ToArray()).ToArray();

        using var loaded = EngineFactory.Load(path, new EngineOptions { KvCacheBlocks = 64, BlockSize = 16 });
        Assert.Equal(pooling, loaded.Config.Pooling);
        var ours = await Task.WhenAll(inputs.Select(t => loaded.Engine.EmbedAsync(new EmbeddingRequest { Tokens = t, Pooling = pooling })));

        var bar = type == GgmlType.F32 ? 0.9999 : 0.999;
        for (var i = 0; i < inputs.Length; i++)
        {
            var theirs = LlamaCppOracle.Embedding(path, inputs[i], pooling switch { PoolingType.Mean => LLamaPoolingType.Mean, PoolingType.Cls => LLamaPoolingType.CLS, _ => LLamaPoolingType.Last });
            Assert.Equal(spec.Dim, theirs.Length);
            var cosine = EmbeddingVector.Cosine(theirs, ours[i]);
            output.WriteLine($"{arch} {pooling} {type} {inputs[i].Length} tokens: cosine {cosine:F7}");
            Assert.True(cosine >= bar, $"{inputs[i].Length} tokens: cosine {cosine} is below {bar}");
            if (inputs[i].Length < 7) continue;
            // The bar tells poolings apart: the other pooling's vector of the same input misses it.
            var other = await loaded.Engine.EmbedAsync(new EmbeddingRequest { Tokens = inputs[i], Pooling = pooling == PoolingType.Last ? PoolingType.Mean : PoolingType.Last });
            Assert.True(EmbeddingVector.Cosine(theirs, other) < bar, $"{inputs[i].Length} tokens: the other pooling also reaches the bar");
        }
    }
}
