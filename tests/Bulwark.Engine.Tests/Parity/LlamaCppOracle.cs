using LLama;
using LLama.Common;
using LLama.Native;

namespace Bulwark.Engine.Tests.Parity;

/// <summary>
/// llama.cpp (through LLamaSharp 0.30.0's CPU backend) as the reference engine: the logits of
/// every position of a prompt decoded as one batch, and its tokenizer. Set up as the fixtures'
/// verification found it agrees with llama2.c: F32 KV cache, flash attention off. Two threads.
/// </summary>
internal static class LlamaCppOracle
{
    private static readonly Lazy<bool> Initialised = new(() =>
    {
        // Quiet: llama.cpp logs every tensor it loads. Errors still reach the test output.
        try
        {
            NativeLibraryConfig.All.WithLogCallback((level, message) =>
            {
                if (level == LLamaLogLevel.Error) Console.Error.Write("llama.cpp: " + message);
            });
        }
        catch (InvalidOperationException)
        {
            // Another oracle (the tokenizer tests') loaded the native library first; its logging stays.
        }
        NativeApi.llama_empty_call();
        return true;
    });

    private static ModelParams Parameters(string path, int context) => new(path)
    {
        ContextSize = (uint)context,
        BatchSize = (uint)context,
        UBatchSize = (uint)context,
        Threads = 2,
        BatchThreads = 2,
        GpuLayerCount = 0,
        FlashAttention = false,
        TypeK = GGMLType.GGML_TYPE_F32,
        TypeV = GGMLType.GGML_TYPE_F32,
    };

    /// <summary>Logits after each token of <paramref name="tokens"/> (positions 0, 1, ...), one vocabulary row each.</summary>
    public static float[][] Logits(string ggufPath, IReadOnlyList<int> tokens)
    {
        _ = Initialised.Value;
        var parameters = Parameters(ggufPath, Math.Max(64, tokens.Count));
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        DecodeAll(context, tokens);
        var rows = new float[tokens.Count][];
        for (var i = 0; i < tokens.Count; i++) rows[i] = context.NativeHandle.GetLogitsIth(i).ToArray();
        return rows;
    }

    /// <summary>llama.cpp's pooled embedding of <paramref name="tokens"/> (one sequence, one batch), as it computes it: not normalised.</summary>
    public static float[] Embedding(string ggufPath, IReadOnlyList<int> tokens, LLamaPoolingType pooling)
    {
        _ = Initialised.Value;
        var parameters = Parameters(ggufPath, Math.Max(64, tokens.Count));
        parameters.Embeddings = true;
        parameters.PoolingType = pooling;
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        DecodeAll(context, tokens);
        return context.NativeHandle.GetEmbeddingsSeq(LLamaSeqId.Zero).ToArray();
    }

    /// <summary>Decodes <paramref name="tokens"/> as one sequence in one batch, every position an output.</summary>
    private static void DecodeAll(LLamaContext context, IReadOnlyList<int> tokens)
    {
        var batch = new LLamaBatch();
        for (var i = 0; i < tokens.Count; i++) batch.Add(tokens[i], i, LLamaSeqId.Zero, logits: true);
        var result = context.NativeHandle.Decode(batch);
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode failed: {result}");
    }

    /// <summary>llama.cpp's tokenization of <paramref name="text"/> with the model's vocabulary.</summary>
    public static int[] Tokenize(string ggufPath, string text, bool addSpecial, bool parseSpecial)
    {
        _ = Initialised.Value;
        var parameters = Parameters(ggufPath, 64);
        parameters.VocabOnly = true;
        using var weights = LLamaWeights.LoadFromFile(parameters);
        return weights.Tokenize(text, addSpecial, parseSpecial, System.Text.Encoding.UTF8).Select(t => (int)t).ToArray();
    }
}
