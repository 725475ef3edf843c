using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Testing;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// A vocabulary handed to llama.cpp (through LLamaSharp) as a vocab-only GGUF: the
/// <c>tokenizer.ggml.*</c> keys our writer produces plus the few <c>llama.*</c> hyper-parameters
/// llama.cpp reads before it skips the tensors. Ours is built from the same file through our
/// GGUF reader, so both sides see exactly the same bytes.
/// </summary>
public sealed class LlamaCppVocabulary : IDisposable
{
    // Latin-1 maps chars U+0000..U+00FF to single bytes one to one, so a string of "byte chars"
    // reaches llama_tokenize as exactly those bytes, invalid UTF-8 included.
    private static readonly Encoding RawBytes = Encoding.Latin1;

    private static readonly MethodInfo VocabPointerGetter =
        typeof(SafeLlamaModelHandle.Vocabulary).GetProperty("VocabNative", BindingFlags.Instance | BindingFlags.NonPublic)?.GetGetMethod(nonPublic: true)
        ?? throw new InvalidOperationException("LLamaSharp's Vocabulary.VocabNative was not found; the oracle needs it for llama_detokenize");

    private readonly LLamaWeights _weights;
    private readonly string? _directory;

    /// <summary>Writes <paramref name="definition"/> to a vocab-only GGUF in a temporary folder and opens it in both.</summary>
    public LlamaCppVocabulary(string name, TokenizerDefinition definition)
        : this(name, WriteTemporary(name, definition, out var directory), directory, definition.PreTokenizerName)
    {
    }

    /// <summary>Opens an existing GGUF (llama.cpp reads only its vocabulary).</summary>
    public static LlamaCppVocabulary Open(string path)
    {
        using var gguf = GgufFile.Open(path);
        return new LlamaCppVocabulary(System.IO.Path.GetFileNameWithoutExtension(path), path, null, gguf.GetStringOrNull("tokenizer.ggml.pre"));
    }

    private LlamaCppVocabulary(string name, string path, string? ownedDirectory, string? preTokenizer)
    {
        Name = name;
        Path = path;
        _directory = ownedDirectory;
        Ours = TokenizerLoader.FromGguf(Path);
        CleansSpaces = preTokenizer is "gpt-2" or "llama-bpe";
        // llama.cpp's loader chatter is kept out of test output, but shown when loading fails.
        var log = new StringBuilder();
        NativeLogConfig.llama_log_set((level, message) => { lock (log) log.Append(message); });
        try
        {
            _weights = LLamaWeights.LoadFromFile(new ModelParams(Path) { VocabOnly = true, GpuLayerCount = 0 });
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"llama.cpp could not load {Path}:\n{log}", e);
        }
    }

    private static string WriteTemporary(string name, TokenizerDefinition definition, out string directory)
    {
        directory = Fixtures.NewTempDirectory("llamacpp-" + name);
        var path = System.IO.Path.Combine(directory, name + ".gguf");
        WriteVocabOnlyGguf(definition, path);
        return path;
    }

    public string Name { get; }

    public string Path { get; }

    public ITokenizer Ours { get; }

    /// <summary>llama_tokenize over raw bytes.</summary>
    public int[] Tokenize(ReadOnlySpan<byte> utf8, bool addSpecial, bool parseSpecial)
    {
        var text = RawBytes.GetString(utf8);
        return [.. _weights.NativeHandle.Tokenize(text, addSpecial, parseSpecial, RawBytes).Select(t => (int)t)];
    }

    public int[] Tokenize(string text, bool addSpecial, bool parseSpecial) =>
        Tokenize(Encoding.UTF8.GetBytes(text), addSpecial, parseSpecial);

    /// <summary>
    /// The pieces llama.cpp gives each token (llama_token_to_piece), joined, with the first
    /// token's prefix space stripped for SentencePiece: what llama_detokenize does before its
    /// optional "clean spaces" pass, and what llama.cpp's server streams.
    /// </summary>
    public byte[] JoinPieces(int[] ids, bool renderSpecial)
    {
        var result = new List<byte>();
        var buffer = new byte[256];
        for (var i = 0; i < ids.Length; i++)
        {
            var lstrip = i == 0 && StripsFirstSpace ? 1 : 0;
            var length = (int)_weights.NativeHandle.TokenToSpan(ids[i], buffer, lstrip, renderSpecial);
            if (length > buffer.Length) throw new InvalidOperationException($"token {ids[i]} has a {length}-byte piece; the buffer has {buffer.Length}");
            result.AddRange(buffer.AsSpan(0, length));
        }
        return [.. result];
    }

    /// <summary>SentencePiece with add_space_prefix: llama_detokenize drops the first token's leading space.</summary>
    private bool StripsFirstSpace => Ours.Model == TokenizerModel.SentencePieceBpe;

    /// <summary>
    /// llama.cpp's clean_spaces (HF's clean_up_tokenization_spaces) is on for the GPT-2 and
    /// Llama 3 pre-tokenizers: llama_detokenize then drops spaces before punctuation, which
    /// loses text; Bulwark decodes without it.
    /// </summary>
    public bool CleansSpaces { get; }

    /// <summary>llama_detokenize with remove_special = false.</summary>
    public unsafe byte[] Detokenize(int[] ids, bool renderSpecial)
    {
        // LLamaSharp keeps llama_detokenize and the vocab pointer internal; the vocab pointer is
        // read by reflection and the function taken from the libllama LLamaSharp already loaded.
        var vocab = (nint)Pointer.Unbox(VocabPointerGetter.Invoke(_weights.NativeHandle.Vocab, null)!);
        var buffer = new byte[Math.Max(64, ids.Length * 8)];
        while (true)
        {
            int length;
            fixed (int* tokenPtr = ids)
            fixed (byte* bufferPtr = buffer)
                length = LlamaDetokenize(vocab, tokenPtr, ids.Length, bufferPtr, buffer.Length, 0, renderSpecial ? (byte)1 : (byte)0);
            if (length >= 0) return buffer[..length];
            buffer = new byte[-length]; // too small: llama_detokenize returns minus the size it needs
        }
    }

    // int32_t llama_detokenize(const llama_vocab*, const llama_token*, int32_t, char*, int32_t, bool remove_special, bool unparse_special)
    private static unsafe delegate* unmanaged[Cdecl]<nint, int*, int, byte*, int, byte, byte, int> LlamaDetokenize =>
        (delegate* unmanaged[Cdecl]<nint, int*, int, byte*, int, byte, byte, int>)DetokenizeExport.Value;

    private static readonly Lazy<nint> DetokenizeExport = new(() =>
    {
        var loaded = File.ReadLines("/proc/self/maps").Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length >= 6 && parts[5].EndsWith("/libllama.so", StringComparison.Ordinal))
            .Select(parts => parts[5]).FirstOrDefault()
            ?? throw new InvalidOperationException("libllama.so is not mapped into this process; LLamaSharp should have loaded it");
        return NativeLibrary.GetExport(NativeLibrary.Load(loaded), "llama_detokenize");
    });

    /// <summary>A GGUF llama.cpp can open with vocab_only: tokenizer metadata and the hyper-parameters it reads first.</summary>
    public static void WriteVocabOnlyGguf(TokenizerDefinition definition, string path)
    {
        new GgufWriter()
            .Add("general.architecture", "llama")
            .Add("general.name", "bulwark-tokenizer-oracle")
            .Add("llama.context_length", 512u)
            .Add("llama.embedding_length", 64u)
            .Add("llama.block_count", 1u)
            .Add("llama.feed_forward_length", 128u)
            .Add("llama.attention.head_count", 4u)
            .Add("llama.attention.head_count_kv", 4u)
            .Add("llama.rope.dimension_count", 16u)
            .Add("llama.attention.layer_norm_rms_epsilon", 1e-5f)
            .AddTokenizer(definition)
            .WriteTo(path);
    }

    public void Dispose()
    {
        _weights.Dispose();
        if (_directory is null) return;
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
