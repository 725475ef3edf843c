using Bulwark.Engine.Formats;
using System.Buffers.Binary;
using System.Text;
using static Bulwark.Engine.Tests.Formats.GgufBytes;

namespace Bulwark.Engine.Tests.Formats;

/// <summary>
/// Generates the hostile model-file corpus committed under TestData/hostile: GGUF and safetensors
/// files truncated at many points, with counts near 2^64, offsets past the end, overlapping
/// tensors, dtype/shape mismatches, header-length overflow, huge or deeply nested metadata,
/// invalid UTF-8 and bad alignment; plus hostile index and config.json files and Hugging Face
/// folders whose config and weights disagree. Deterministic; regenerate with
/// <c>BULWARK_REGENERATE_HOSTILE=1 dotnet test --filter HostileCorpusTests</c> (see docs/fuzzing.md).
/// </summary>
internal static class HostileModelFiles
{
    public static IEnumerable<(string Path, byte[] Bytes)> All() =>
        Gguf().Select(c => ($"gguf/{c.Name}.gguf", c.Bytes))
            .Concat(Safetensors().Select(c => ($"safetensors/{c.Name}.safetensors", c.Bytes)))
            .Concat(Indexes().Select(c => ($"index/{c.Name}.json", c.Bytes)))
            .Concat(Configs().Select(c => ($"config/{c.Name}.json", c.Bytes)))
            .Concat(Folders());

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    // ---------------------------------------------------------------- GGUF

    private sealed record T(string Name, ulong[] Dims, uint Type, int Bytes);

    /// <summary>A consistent GGUF: header, kvs, tensor infos with aligned back-to-back offsets, data.</summary>
    private static byte[] Gguf(IReadOnlyList<Action<GgufBytes>> kvs, IReadOnlyList<T> tensors)
    {
        var b = new GgufBytes().Header((ulong)tensors.Count, (ulong)kvs.Count);
        foreach (var kv in kvs) kv(b);
        ulong offset = 0;
        foreach (var t in tensors)
        {
            b.TensorInfo(t.Name, t.Dims, t.Type, offset);
            offset += (ulong)((t.Bytes + 31) / 32 * 32);
        }
        b.AlignTo(32);
        for (var i = 0; i < tensors.Count; i++)
        {
            b.Raw(Enumerable.Range(0, tensors[i].Bytes).Select(x => (byte)(x * 7 + i)).ToArray());
            if (i < tensors.Count - 1) b.AlignTo(32);
        }
        return b.ToArray();
    }

    private static readonly T TensorA = new("a", [4, 2], 0, 32);
    private static readonly T TensorB = new("b", [8], 1, 16);

    /// <summary>The small valid file the truncations and most mutations start from.</summary>
    public static byte[] ValidGguf() => Gguf(
        [b => b.KvString("general.architecture", "toy"), b => b.KvU32("general.alignment", 32),
         b => b.Str("toy.list").U32(TypeArray).U32(TypeUInt32).U64(3).U32(1).U32(2).U32(3)],
        [TensorA, TensorB]);

    private static Action<GgufBytes>[] LlamaKvs(string arch = "llama", Action<GgufBytes>? replace = null, string? replacedKey = null)
    {
        var kvs = new List<(string Key, Action<GgufBytes> Write)>
        {
            ("general.architecture", b => b.KvString("general.architecture", arch)),
            ($"{arch}.embedding_length", b => b.KvU32($"{arch}.embedding_length", 8)),
            ($"{arch}.block_count", b => b.KvU32($"{arch}.block_count", 1)),
            ($"{arch}.attention.head_count", b => b.KvU32($"{arch}.attention.head_count", 2)),
            ($"{arch}.attention.head_count_kv", b => b.KvU32($"{arch}.attention.head_count_kv", 1)),
            ($"{arch}.feed_forward_length", b => b.KvU32($"{arch}.feed_forward_length", 8)),
            ($"{arch}.context_length", b => b.KvU32($"{arch}.context_length", 16)),
        };
        return kvs.Select(kv => kv.Key == replacedKey ? replace! : kv.Write).Where(w => w is not null).ToArray();
    }

    private static readonly T Embedding = new("token_embd.weight", [8, 16], 0, 8 * 16 * 4);

    private static IEnumerable<(string Name, byte[] Bytes)> Gguf()
    {
        var valid = ValidGguf();
        foreach (var cut in new[] { 0, 1, 3, 4, 7, 8, 15, 16, 23, 24, 31, 40, 60, 90, 120, 150, 180, 200, 230 }.Where(c => c < valid.Length)
                     .Concat([valid.Length - 49, valid.Length - 48, valid.Length - 17, valid.Length - 1]).Distinct().Order())
            yield return ($"truncated-at-{cut:D4}", valid[..cut]);

        yield return ("bad-magic", [.. "GGML"u8, .. valid[4..]]);
        foreach (var (name, version) in new[] { ("version-1", 1u), ("version-4", 4u), ("version-big-endian-3", 0x03000000u) })
            yield return (name, Patch(valid, 4, BitConverter.GetBytes(version)));
        foreach (var (name, count) in new[] { ("tensor-count-2^64-1", ulong.MaxValue), ("tensor-count-2^63", 1UL << 63), ("tensor-count-2^32+2", (1UL << 32) + 2) })
            yield return (name, Patch(valid, 8, BitConverter.GetBytes(count)));
        foreach (var (name, count) in new[] { ("kv-count-2^64-1", ulong.MaxValue), ("kv-count-2^63+3", (1UL << 63) + 3), ("kv-count-4", 4UL) })
            yield return (name, Patch(valid, 16, BitConverter.GetBytes(count)));

        // The first key's length lives at offset 24.
        yield return ("key-length-2^64-1", Patch(valid, 24, BitConverter.GetBytes(ulong.MaxValue)));
        yield return ("key-length-2^63", Patch(valid, 24, BitConverter.GetBytes(1UL << 63)));
        yield return ("key-length-past-end", Patch(valid, 24, BitConverter.GetBytes((ulong)valid.Length)));
        yield return ("key-invalid-utf8", Gguf([b => b.Str([0x67, 0xFF, 0xFE]).U32(TypeUInt32).U32(1)], []));
        yield return ("key-overlong-utf8-nul", Gguf([b => b.Str([0x61, 0xC0, 0x80]).U32(TypeUInt32).U32(1)], []));
        yield return ("key-utf8-surrogate", Gguf([b => b.Str([0x61, 0xED, 0xA0, 0x80]).U32(TypeUInt32).U32(1)], []));
        yield return ("value-invalid-utf8", Gguf([b => b.Str("general.name").U32(TypeString).Str([0xE2, 0x82])], []));
        yield return ("value-string-length-2^64-1", Gguf([b => b.Str("general.name").U32(TypeString).U64(ulong.MaxValue).Raw("abc"u8)], []));
        yield return ("value-type-unknown-13", Gguf([b => b.Str("k").U32(13).U32(0)], []));
        yield return ("value-type-2^32-1", Gguf([b => b.Str("k").U32(uint.MaxValue).U32(0)], []));
        yield return ("value-bool-2", Gguf([b => b.Str("k").U32(TypeBool).Raw([2])], []));
        yield return ("duplicate-key", Gguf([b => b.KvU32("k", 1), b => b.KvU32("k", 2)], []));

        yield return ("array-count-2^64-1-u8", Gguf([b => b.Str("k").U32(TypeArray).U32(TypeUInt8).U64(ulong.MaxValue).Raw([1, 2, 3])], []));
        yield return ("array-count-2^62-u64", Gguf([b => b.Str("k").U32(TypeArray).U32(TypeUInt64).U64(1UL << 62).U64(1)], []));
        yield return ("array-count-2^61-strings", Gguf([b => b.Str("k").U32(TypeArray).U32(TypeString).U64(1UL << 61).Str("x")], []));
        yield return ("array-count-past-end-u32", Gguf([b => b.Str("k").U32(TypeArray).U32(TypeUInt32).U64(1000).U32(1)], []));
        yield return ("array-element-type-unknown", Gguf([b => b.Str("k").U32(TypeArray).U32(77).U64(1).U32(1)], []));
        yield return ("array-of-strings-invalid-utf8", Gguf([b => b.Str("k").U32(TypeArray).U32(TypeString).U64(2).Str("ok").Str([0xC3])], []));
        yield return ("array-of-arrays-count-2^64-1", Gguf([b => b.Str("k").U32(TypeArray).U32(TypeArray).U64(ulong.MaxValue).U32(TypeUInt8).U64(0)], []));
        yield return ("array-nested-64-deep", Gguf([b => Nested(b.Str("k").U32(TypeArray), 64)], []));
        yield return ("array-nested-5000-deep", Gguf([b => Nested(b.Str("k").U32(TypeArray), 5000)], []));
        yield return ("array-of-16m-empty-arrays-claimed", Gguf([b => b.Str("k").U32(TypeArray).U32(TypeArray).U64(16 * 1024 * 1024 + 1).U32(TypeUInt8).U64(0)], []));

        yield return ("alignment-0", Gguf([b => b.KvU32("general.alignment", 0)], [TensorA]));
        yield return ("alignment-3", Gguf([b => b.KvU32("general.alignment", 3)], [TensorA]));
        yield return ("alignment-as-string", Gguf([b => b.KvString("general.alignment", "32")], [TensorA]));
        yield return ("alignment-2^31", Gguf([b => b.KvU32("general.alignment", 1u << 31)], [TensorA]));

        yield return ("tensor-name-invalid-utf8", TensorCase(b => b.Str([0xF8, 0x88, 0x80, 0x80, 0x80]).U32(1).U64(8).U32(0).U64(0)));
        yield return ("tensor-n-dims-0", TensorCase(b => b.Str("t").U32(0).U32(0).U64(0)));
        yield return ("tensor-n-dims-5", TensorCase(b => b.TensorInfo("t", [1, 1, 1, 1, 8], 0, 0)));
        yield return ("tensor-n-dims-2^32-1", TensorCase(b => b.Str("t").U32(uint.MaxValue).U64(8).U32(0).U64(0)));
        yield return ("tensor-dim-0", TensorCase(b => b.TensorInfo("t", [8, 0], 0, 0)));
        yield return ("tensor-dim-2^63", TensorCase(b => b.TensorInfo("t", [1UL << 63], 0, 0)));
        yield return ("tensor-dims-product-overflow", TensorCase(b => b.TensorInfo("t", [1UL << 32, 1UL << 32], 0, 0)));
        yield return ("tensor-bytes-overflow", TensorCase(b => b.TensorInfo("t", [1UL << 31, 1UL << 31], 0, 0)));
        yield return ("tensor-type-unknown-99", TensorCase(b => b.TensorInfo("t", [8], 99, 0)));
        yield return ("tensor-type-removed-q4_2", TensorCase(b => b.TensorInfo("t", [32], 4, 0)));
        yield return ("tensor-q8_0-row-not-block-multiple", TensorCase(b => b.TensorInfo("t", [33], 8, 0)));
        // Every block format the engine runs: a row that is not whole blocks, and blocks cut off by the end of the file.
        foreach (var type in new[] { GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K,
                     GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_NL, GgmlType.IQ4_XS })
        {
            var block = (ulong)GgmlTypes.BlockSize(type);
            var name = type.ToString().ToLowerInvariant();
            yield return ($"tensor-{name}-row-not-block-multiple", TensorCase(b => b.TensorInfo("t", [block + 1], (uint)type, 0)));
            yield return ($"tensor-{name}-blocks-truncated", TensorCase(b => b.TensorInfo("t", [block * 8], (uint)type, 0)));
        }
        yield return ("tensor-offset-misaligned", TensorCase(b => b.TensorInfo("t", [8], 0, 4)));
        yield return ("tensor-offset-past-end", TensorCase(b => b.TensorInfo("t", [8], 0, 4096)));
        yield return ("tensor-offset-2^64-32", TensorCase(b => b.TensorInfo("t", [8], 0, ulong.MaxValue - 31)));
        yield return ("tensor-size-past-end", TensorCase(b => b.TensorInfo("t", [64], 0, 0)));
        yield return ("tensor-duplicate-name", Gguf([], [TensorA, TensorA with { Bytes = 32 }]));
        yield return ("tensors-overlap", OverlappingTensors());
        yield return ("data-section-past-end", new GgufBytes().Header(1, 0).TensorInfo("t", [8], 0, 0).ToArray());

        // Valid GGUF structure, hostile model metadata: the model loader must refuse each cleanly.
        yield return ("model-arch-gpt2", Gguf(LlamaKvs("gpt2"), [Embedding]));
        yield return ("model-arch-missing", Gguf(LlamaKvs().Skip(1).ToArray(), [Embedding]));
        yield return ("model-embedding-length-2^40", Gguf(LlamaKvs(replacedKey: "llama.embedding_length", replace: b => b.Str("llama.embedding_length").U32(TypeUInt64).U64(1UL << 40)), [Embedding]));
        yield return ("model-head-count-0", Gguf(LlamaKvs(replacedKey: "llama.attention.head_count", replace: b => b.KvU32("llama.attention.head_count", 0)), [Embedding]));
        yield return ("model-head-count-kv-3", Gguf(LlamaKvs(replacedKey: "llama.attention.head_count_kv", replace: b => b.KvU32("llama.attention.head_count_kv", 3)), [Embedding]));
        yield return ("model-context-length-negative", Gguf(LlamaKvs(replacedKey: "llama.context_length", replace: b => b.Str("llama.context_length").U32(TypeInt32).U32(uint.MaxValue)), [Embedding]));
        yield return ("model-block-count-as-string", Gguf(LlamaKvs(replacedKey: "llama.block_count", replace: b => b.KvString("llama.block_count", "1")), [Embedding]));
        yield return ("model-block-count-2^31", Gguf(LlamaKvs(replacedKey: "llama.block_count", replace: b => b.KvU32("llama.block_count", 1u << 31)), [Embedding]));
        yield return ("model-rms-eps-nan", Gguf([.. LlamaKvs(), b => b.KvF32("llama.attention.layer_norm_rms_epsilon", float.NaN)], [Embedding]));
        yield return ("model-rope-scaling-yarn", Gguf([.. LlamaKvs(), b => b.KvString("llama.rope.scaling.type", "yarn")], [Embedding]));
        yield return ("model-gemma2-sliding-window-negative", Gguf([.. LlamaKvs("gemma2"), b => b.Str("gemma2.attention.sliding_window").U32(TypeInt32).U32(uint.MaxValue)], [Embedding]));
        yield return ("model-gemma3-sliding-window-2^31", Gguf([.. LlamaKvs("gemma3"), b => b.KvU32("gemma3.attention.sliding_window", 1u << 31)], [Embedding]));
        yield return ("model-gemma2-attn-softcap-nan", Gguf([.. LlamaKvs("gemma2"), b => b.KvF32("gemma2.attn_logit_softcapping", float.NaN)], [Embedding]));
        yield return ("model-gemma2-final-softcap-zero", Gguf([.. LlamaKvs("gemma2"), b => b.KvF32("gemma2.final_logit_softcapping", 0f)], [Embedding]));
        yield return ("model-gemma2-final-softcap-as-string", Gguf([.. LlamaKvs("gemma2"), b => b.KvString("gemma2.final_logit_softcapping", "30")], [Embedding]));
        yield return ("model-token-embd-missing", Gguf(LlamaKvs(), [TensorA]));
        yield return ("model-token-embd-1d", Gguf(LlamaKvs(), [new T("token_embd.weight", [128], 0, 512)]));
        yield return ("model-token-embd-wrong-width", Gguf(LlamaKvs(), [new T("token_embd.weight", [4, 32], 0, 512)]));
        // Types the engine has no kernel for: refused at load, naming the type and the tensor.
        foreach (var type in UnsupportedTypes)
            yield return ($"model-token-embd-{type.ToString().ToLowerInvariant()}", UnsupportedEmbedding(type));
        yield return ("model-layer-tensors-missing", Gguf(LlamaKvs(), [Embedding, new T("output_norm.weight", [8], 0, 32)]));
        yield return ("model-rope-freqs-wrong-type", Gguf(LlamaKvs(), [Embedding, new T("rope_freqs.weight", [2], 1, 4)]));
        // Phi-3's LongRoPE needs both factor sets; its sliding window is a non-negative count.
        yield return ("model-phi3-rope-factors-short-only", Gguf(LlamaKvs("phi3"), [Embedding, new T("rope_factors_short.weight", [2], 0, 8)]));
        // Mixtures of experts: counts out of range, used above the count, a dense architecture with experts, and merged expert tensors of the wrong shape.
        yield return ("model-experts-used-without-experts", Gguf([.. LlamaKvs(), b => b.KvU32("llama.expert_used_count", 2)], [Embedding]));
        yield return ("model-experts-used-above-count", Gguf([.. LlamaKvs(), b => b.KvU32("llama.expert_count", 4), b => b.KvU32("llama.expert_used_count", 5)], [Embedding]));
        yield return ("model-experts-count-2^31", Gguf([.. LlamaKvs(), b => b.KvU32("llama.expert_count", 1u << 31), b => b.KvU32("llama.expert_used_count", 2)], [Embedding]));
        yield return ("model-qwen3moe-experts-0", Gguf([.. LlamaKvs("qwen3moe"), b => b.KvU32("qwen3moe.expert_count", 0), b => b.KvU32("qwen3moe.expert_used_count", 0)], [Embedding]));
        yield return ("model-qwen3moe-experts-missing", Gguf(LlamaKvs("qwen3moe"), [Embedding]));
        yield return ("model-qwen2-with-experts", Gguf([.. LlamaKvs("qwen2"), b => b.KvU32("qwen2.expert_count", 4)], [Embedding]));
        yield return ("model-experts-tensor-2d", Gguf([.. LlamaKvs(), b => b.KvU32("llama.expert_count", 2), b => b.KvU32("llama.expert_used_count", 1)],
            [Embedding, new T("blk.0.ffn_gate_exps.weight", [8, 8], 0, 256)]));
        yield return ("model-phi3-sliding-window-negative", Gguf([.. LlamaKvs("phi3"), b => b.Str("phi3.attention.sliding_window").U32(TypeInt32).U32(uint.MaxValue)], [Embedding]));
    }

    /// <summary>The i-quants and ternary types llama.cpp writes that the engine does not run.</summary>
    public static readonly GgmlType[] UnsupportedTypes =
        [GgmlType.IQ2_XXS, GgmlType.IQ2_XS, GgmlType.IQ2_S, GgmlType.IQ3_XXS, GgmlType.IQ3_S, GgmlType.IQ1_S, GgmlType.IQ1_M, GgmlType.TQ1_0, GgmlType.TQ2_0];

    /// <summary>A llama model whose token embedding [256 × 16] is <paramref name="type"/>, its bytes all there.</summary>
    public static byte[] UnsupportedEmbedding(GgmlType type) =>
        Gguf(LlamaKvs(replacedKey: "llama.embedding_length", replace: b => b.KvU32("llama.embedding_length", 256)), [new T("token_embd.weight", [256, 16], (uint)type, checked((int)GgmlTypes.ByteSize(type, 256 * 16)))]);

    private static GgufBytes Nested(GgufBytes b, int depth)
    {
        for (var i = 0; i < depth; i++) b.U32(TypeArray).U64(1);
        return b.U32(TypeUInt8).U64(0);
    }

    /// <summary>No kvs, one tensor info written by <paramref name="info"/>, then 64 aligned data bytes.</summary>
    private static byte[] TensorCase(Action<GgufBytes> info)
    {
        var b = new GgufBytes().Header(1, 0);
        info(b);
        return b.AlignTo(32).Zeros(64).ToArray();
    }

    private static byte[] OverlappingTensors()
    {
        var b = new GgufBytes().Header(2, 0).TensorInfo("a", [16], 0, 0).TensorInfo("b", [16], 0, 32);
        return b.AlignTo(32).Zeros(96).ToArray();
    }

    private static byte[] Patch(byte[] source, int offset, byte[] bytes)
    {
        var copy = (byte[])source.Clone();
        bytes.CopyTo(copy, offset);
        return copy;
    }

    // ---------------------------------------------------------------- safetensors

    private const string TwoTensors = """{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]},"b":{"dtype":"BF16","shape":[8],"data_offsets":[32,48]}}""";

    public static byte[] ValidSafetensors() => SafetensorsBytes.Raw(TwoTensors, Enumerable.Range(0, 48).Select(i => (byte)i).ToArray());

    private static byte[] St(string header, int dataBytes = 32) => SafetensorsBytes.Raw(header, new byte[dataBytes]);

    private static byte[] WithLength(byte[] file, ulong length)
    {
        var copy = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(copy, length);
        return copy;
    }

    private static string One(string dtype = "F32", string shape = "[8]", string offsets = "[0,32]", string name = "w") =>
        "{\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}}";

    private static IEnumerable<(string Name, byte[] Bytes)> Safetensors()
    {
        var valid = ValidSafetensors();
        var headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        foreach (var cut in new[] { 0, 1, 4, 7, 8, 9, 20, 60, 100, headerEnd - 1, headerEnd, headerEnd + 1, headerEnd + 31, headerEnd + 32, valid.Length - 1 }.Distinct().Order())
            yield return ($"truncated-at-{cut:D4}", valid[..cut]);

        yield return ("header-length-2^64-1", WithLength(valid, ulong.MaxValue));
        yield return ("header-length-2^63", WithLength(valid, 1UL << 63));
        yield return ("header-length-100mb-plus-1", WithLength(valid, 100UL * 1024 * 1024 + 1));
        yield return ("header-length-past-end", WithLength(valid, (ulong)valid.Length - 7));
        yield return ("header-length-0", WithLength(valid, 0));
        yield return ("header-length-1", WithLength(valid, 1));
        yield return ("header-length-cuts-json", WithLength(valid, 40));
        yield return ("header-not-json", St("this is not json at all!"));
        yield return ("header-json-array", St("[1,2,3]"));
        yield return ("header-leading-space", St(" " + One()));
        yield return ("header-trailing-garbage", St(One() + "}"));
        yield return ("header-nul-padding", SafetensorsBytes.Raw([.. Utf8(One()), 0, 0, 0], new byte[32], pad: false));
        yield return ("header-nested-10000-deep", St("{\"a\":" + new string('[', 10000) + new string(']', 10000) + "}"));
        yield return ("header-nested-objects", St("""{"w":{"dtype":{"x":{"y":{"z":1}}},"shape":[8],"data_offsets":[0,32]}}"""));
        yield return ("name-invalid-utf8", SafetensorsBytes.Raw([.. "{\""u8, 0xFF, 0xFE, .. Utf8(One()[2..])], new byte[32]));
        yield return ("name-overlong-utf8", SafetensorsBytes.Raw([.. "{\""u8, 0xC0, 0xAF, .. Utf8(One()[2..])], new byte[32]));
        yield return ("dtype-invalid-utf8", SafetensorsBytes.Raw([.. Utf8("""{"w":{"dtype":"F"""), 0xED, 0xA0, 0x80, .. Utf8(""" ","shape":[8],"data_offsets":[0,32]}}""")], new byte[32]));
        yield return ("name-escaped-lone-surrogate", St(One(name: "\\ud800")));
        yield return ("offsets-past-end", St(One(offsets: "[0,64]")));
        yield return ("offsets-2^64-1", St(One(offsets: "[18446744073709551584,18446744073709551615]")));
        yield return ("offsets-2^64", St(One(offsets: "[0,18446744073709551616]")));
        yield return ("offsets-begin-after-end", St(One(offsets: "[32,0]")));
        yield return ("offsets-three-numbers", St(One(offsets: "[0,32,64]")));
        yield return ("offsets-negative", St(One(offsets: "[-32,0]")));
        yield return ("offsets-float", St(One(offsets: "[0,32.0]")));
        yield return ("offsets-huge-literal", St(One(offsets: "[0," + new string('9', 5000) + "]")));
        yield return ("shape-mismatch-too-small", St(One(shape: "[4]")));
        yield return ("shape-mismatch-dtype-f16", St(One(dtype: "F16")));
        yield return ("shape-product-overflow", St(One(shape: "[4294967296,4294967296,4294967296]")));
        yield return ("shape-bytes-overflow", St(One(shape: "[2305843009213693952,4]")));
        yield return ("shape-2^64-1", St(One(shape: "[18446744073709551615]")));
        yield return ("shape-1e999", St(One(shape: "[1e999]")));
        yield return ("shape-100-dims", St(One(shape: "[" + string.Join(",", Enumerable.Repeat("1", 99)) + ",8]")));
        yield return ("shape-not-array", St(One(shape: "8")));
        yield return ("dtype-unsupported-i64", St(One(dtype: "I64", shape: "[4]")));
        yield return ("dtype-unknown", St(One(dtype: "Q4_0")));
        yield return ("tensors-overlap", St("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[12,28]}}"""));
        yield return ("tensors-same-range", St("""{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},"b":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}"""));
        yield return ("tensor-duplicate-name", St(One()[..^1] + "," + One()[1..]));
        yield return ("tensor-missing-dtype", St("""{"w":{"shape":[8],"data_offsets":[0,32]}}"""));
        yield return ("tensor-unknown-field", St("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32],"offsets":[0,32]}}"""));
        yield return ("metadata-not-strings", St("""{"__metadata__":{"total":123}}"""));
        yield return ("metadata-nested", St("""{"__metadata__":{"a":{"b":{"c":"d"}}}}"""));
        yield return ("metadata-twice", St("""{"__metadata__":{},"__metadata__":{}}"""));
    }

    // ---------------------------------------------------------------- index and config.json

    private static IEnumerable<(string Name, byte[] Bytes)> Indexes()
    {
        static byte[] Map(string shard) => Utf8("{\"metadata\":{\"total_size\":32},\"weight_map\":{\"w\":\"" + shard + "\"}}");
        yield return ("shard-parent-dir", Map("../model.safetensors"));
        yield return ("shard-absolute", Map("/etc/passwd"));
        yield return ("shard-subdir", Map("sub/model.safetensors"));
        yield return ("shard-backslash", Map("..\\\\model.safetensors"));
        yield return ("shard-nul", Map("model.safetensors\\u0000.txt"));
        yield return ("shard-pickle", Map("pytorch_model.bin"));
        yield return ("shard-empty", Map(""));
        yield return ("weight-map-missing", Utf8("""{"metadata":{}}"""));
        yield return ("weight-map-array", Utf8("""{"weight_map":["model.safetensors"]}"""));
        yield return ("metadata-nested-10000-deep", Utf8("{\"metadata\":" + new string('[', 10000) + new string(']', 10000) + "}"));
        yield return ("invalid-utf8-tensor-name", [.. Utf8("{\"weight_map\":{\""), 0xFF, .. Utf8("\":\"model.safetensors\"}}")]);
        yield return ("not-json", Utf8("weight_map = model.safetensors"));
    }

    private static string Config(string extra = "", string modelType = "llama") =>
        "{\"model_type\":\"" + modelType + "\"," +
        "\"" + """architectures":["LlamaForCausalLM"],"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"intermediate_size":8,"vocab_size":16,"max_position_embeddings":16""" +
        extra + "}";

    private static IEnumerable<(string Name, byte[] Bytes)> Configs()
    {
        yield return ("model-type-unknown", Utf8(Config(modelType: "gpt_neox")));
        yield return ("model-type-invalid-utf8", [.. Utf8("""{"model_type":"ll"""), 0xC3, 0x28, .. Utf8("""a"}""")]);
        yield return ("hidden-size-2^40", Utf8(Config(",\"hidden_size\":1099511627776")));
        yield return ("hidden-size-1e999", Utf8(Config().Replace("\"hidden_size\":8", "\"hidden_size\":1e999")));
        yield return ("layers-negative", Utf8(Config().Replace("\"num_hidden_layers\":1", "\"num_hidden_layers\":-1")));
        yield return ("heads-zero", Utf8(Config().Replace("\"num_attention_heads\":2", "\"num_attention_heads\":0")));
        yield return ("rope-scaling-yarn", Utf8(Config(",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}")));
        yield return ("rope-theta-nan-string", Utf8(Config(",\"rope_theta\":\"NaN\"")));
        yield return ("rope-llama3-zero-width", Utf8(Config(",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,\"high_freq_factor\":4}")));
        static string Phi3(string extra) => Config(extra, "phi3").Replace("LlamaForCausalLM", "Phi3ForCausalLM");
        yield return ("phi3-longrope-long-factor-missing", Utf8(Phi3(",\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1]}")));
        yield return ("phi3-longrope-factor-as-string", Utf8(Phi3(",\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1],\"long_factor\":[\"NaN\",1]}")));
        yield return ("smollm3-no-rope-layers-not-the-pattern", Utf8(Config(",\"no_rope_layers\":[0]", "smollm3").Replace("LlamaForCausalLM", "SmolLM3ForCausalLM")));
        yield return ("nested-10000-deep", Utf8(Config(",\"x\":" + new string('[', 10000) + new string(']', 10000))));
        yield return ("quantized-gptq", Utf8(Config(",\"quantization_config\":{\"quant_method\":\"gptq\"}")));
        yield return ("quantized-awq-gemv", Utf8(Config(",\"quantization_config\":{\"quant_method\":\"awq\",\"version\":\"gemv\"}")));
        yield return ("quantized-gptq-3-bit", Utf8(Config(",\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":3}")));
        yield return ("quantized-bitsandbytes", Utf8(Config(",\"quantization_config\":{\"quant_method\":\"bitsandbytes\"}")));
        yield return ("gemma2-gelu-exact", Utf8(Config(",\"hidden_activation\":\"gelu\"", "gemma2").Replace("LlamaForCausalLM", "Gemma2ForCausalLM")));
        yield return ("gemma2-softcap-negative", Utf8(Config(",\"attn_logit_softcapping\":-50", "gemma2").Replace("LlamaForCausalLM", "Gemma2ForCausalLM")));
        yield return ("gemma2-layer-types-too-short", Utf8(Config(",\"layer_types\":[]", "gemma2").Replace("LlamaForCausalLM", "Gemma2ForCausalLM")));
        yield return ("gemma3-softcap", Utf8(Config(",\"final_logit_softcapping\":30.0", "gemma3_text").Replace("LlamaForCausalLM", "Gemma3ForCausalLM")));
        yield return ("gemma3-query-scalar-zero", Utf8(Config(",\"query_pre_attn_scalar\":0", "gemma3_text").Replace("LlamaForCausalLM", "Gemma3ForCausalLM")));
        yield return ("not-an-object", Utf8("\"llama\""));
    }

    /// <summary>Hugging Face folders whose files are each well-formed but do not agree with each other.</summary>
    private static IEnumerable<(string Path, byte[] Bytes)> Folders()
    {
        static IEnumerable<(string, byte[])> Folder(string name, string config, params SafetensorsBytes.Tensor[] tensors) =>
            [($"hf/{name}/config.json", Utf8(config)), ($"hf/{name}/model.safetensors", SafetensorsBytes.Build(tensors))];
        static SafetensorsBytes.Tensor F(string name, params long[] shape) =>
            new(name, "F32", shape, new byte[shape.Aggregate(4L, (p, d) => p * d)]);
        return Folder("embedding-wrong-shape", Config(), F("model.embed_tokens.weight", 16, 4))
            .Concat(Folder("embedding-1d", Config(), F("model.embed_tokens.weight", 128)))
            .Concat(Folder("vocab-larger-than-weights", Config(",\"vocab_size\":16777216"), F("model.embed_tokens.weight", 16, 8)))
            .Concat(Folder("untied-without-lm-head", Config(",\"tie_word_embeddings\":false"), F("model.embed_tokens.weight", 16, 8)))
            .Concat(Folder("layers-missing", Config(), F("model.embed_tokens.weight", 16, 8), F("model.norm.weight", 8)))
            .Concat(Folder("norm-as-matrix", Config(), F("model.embed_tokens.weight", 16, 8), F("model.layers.0.input_layernorm.weight", 8, 8)))
            .Concat(Folder("embedding-i32", Config(), Packed("model.embed_tokens.weight", "I32", 16, 8)))
            .Concat(Folder("awq-qweight-wrong-shape", Int4("awq"), F("model.embed_tokens.weight", 16, 32), Packed(Q + "qweight", "I32", 32, 2)))
            .Concat(Folder("awq-scales-missing", Int4("awq"), F("model.embed_tokens.weight", 16, 32), Packed(Q + "qweight", "I32", 32, 4), Packed(Q + "qzeros", "I32", 1, 4)))
            .Concat(Folder("gptq-g-idx-out-of-range", Int4("gptq"), F("model.embed_tokens.weight", 16, 32), Packed(Q + "qweight", "I32", 4, 32),
                Packed(Q + "qzeros", "I32", 1, 4), Packed(Q + "scales", "F16", 1, 32), new(Q + "g_idx", "I32", [32], Enumerable.Repeat(new byte[] { 7, 0, 0, 0 }, 32).SelectMany(b => b).ToArray())));
    }

    private const string Q = "model.layers.0.self_attn.q_proj.";

    private static SafetensorsBytes.Tensor Packed(string name, string dtype, params long[] shape) =>
        new(name, dtype, shape, new byte[shape.Aggregate(dtype == "F16" ? 2L : 4L, (p, d) => p * d)]);

    /// <summary>A 32-wide model (whole 32-value blocks) with an AWQ or GPTQ quantization_config.</summary>
    private static string Int4(string method) =>
        Config(",\"quantization_config\":{\"quant_method\":\"" + method + "\",\"bits\":4,\"group_size\":32}").Replace("\"hidden_size\":8", "\"hidden_size\":32");
}
