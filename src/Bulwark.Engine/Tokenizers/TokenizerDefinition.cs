namespace Bulwark.Engine.Tokenizers;

/// <summary>The two tokenizer algorithms Bulwark implements, named as GGUF's <c>tokenizer.ggml.model</c> names them.</summary>
public enum TokenizerModel
{
    /// <summary>Byte-level BPE with merge ranks (GGUF "gpt2": GPT-2, Llama 3, Qwen2, SmolLM, tiktoken vocabularies).</summary>
    ByteLevelBpe,
    /// <summary>SentencePiece BPE with scores and byte fallback (GGUF "llama": Llama 2, TinyLlama, Mistral).</summary>
    SentencePieceBpe,
}

/// <summary>
/// Everything a tokenizer is built from, whatever file it came from: the same fields GGUF's
/// <c>tokenizer.ggml.*</c> metadata carries. Loaders produce it; <see cref="Loading.TokenizerFactory"/>
/// turns it into an <see cref="ITokenizer"/>; tests write it back out as GGUF or tokenizer.json.
/// </summary>
public sealed record TokenizerDefinition
{
    public required TokenizerModel Model { get; init; }

    /// <summary>Token texts by id: byte-level strings (GPT-2 alphabet) for BPE, pieces with '▁' for SentencePiece.</summary>
    public required IReadOnlyList<string> Tokens { get; init; }

    public required IReadOnlyList<TokenType> Types { get; init; }

    /// <summary>SentencePiece scores by id (higher merges first); null for BPE.</summary>
    public IReadOnlyList<float>? Scores { get; init; }

    /// <summary>BPE merges in rank order, each the two token texts; null for SentencePiece.</summary>
    public IReadOnlyList<(string Left, string Right)>? Merges { get; init; }

    /// <summary>BPE pre-tokenizer regexes applied one after the other (each splits the pieces of the one before).</summary>
    public IReadOnlyList<string> PreTokenizerPatterns { get; init; } = [];

    /// <summary>The llama.cpp pre-tokenizer name (<c>tokenizer.ggml.pre</c>) when known, for GGUF export.</summary>
    public string? PreTokenizerName { get; init; }

    /// <summary>Emit a piece that is itself a token without running merges (tiktoken and Llama 3 do).</summary>
    public bool IgnoreMerges { get; init; }

    /// <summary>SentencePiece: prepend '▁' to text at the start and after a special token.</summary>
    public bool AddSpacePrefix { get; init; } = true;

    public SpecialTokens Special { get; init; } = new();
}
