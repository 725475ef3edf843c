namespace Bulwark.Engine.Tokenizers.ByteLevel;

/// <summary>
/// The pre-tokenizer regexes real byte-level vocabularies were trained with, and the choice
/// llama.cpp makes from GGUF's <c>tokenizer.ggml.pre</c>. Where llama.cpp approximates a
/// pattern (o200k's case classes), GGUF loading uses llama.cpp's form so ids match it.
/// </summary>
public static class PreTokenizerPatterns
{
    /// <summary>GPT-2 / r50k (and HF's ByteLevel pre-tokenizer with use_regex).</summary>
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>tiktoken cl100k_base, as OpenAI writes it (case-insensitive contractions).</summary>
    public const string Cl100k = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Llama 3 (cl100k with ASCII-only case folding of the contractions).</summary>
    public const string Llama3 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2 / Qwen2.5 / Qwen3: Llama 3's pattern with every digit on its own.</summary>
    public const string Qwen2 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>tiktoken o200k_base, as OpenAI writes it.</summary>
    public const string O200k = @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>
    /// llama.cpp's "gpt-4o" form of o200k: its regex engine has no case classes, so "upper" is
    /// approximated as "a letter that is not a-z" and "lower" as "a letter that is not A-Z".
    /// </summary>
    public const string O200kLlamaCpp = @"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>HF's Digits pre-tokenizer with individual_digits (SmolLM puts it before ByteLevel).</summary>
    public const string SingleDigits = @"\p{N}";

    /// <summary>
    /// The patterns llama.cpp applies for a <c>tokenizer.ggml.pre</c> value, and whether it
    /// skips merges for pieces that are whole tokens. Null for names Bulwark does not know,
    /// so a model is refused rather than tokenized differently from its training.
    /// </summary>
    public static (string[] Patterns, bool IgnoreMerges)? ForLlamaCpp(string? pre) => pre switch
    {
        // llama.cpp spells GPT-2's "gpt-2" and refuses "gpt2".
        "gpt-2" or "phi-2" or "mpt" or "olmo" or "jais" => ([Gpt2], false),
        "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "pixtral" => ([Llama3], true),
        "qwen2" or "deepseek-r1-qwen" or "megrez" => ([Qwen2], false),
        "smollm" or "starcoder" or "refact" or "command-r" or "codeshell" or "exaone" or "minerva-7b" => ([SingleDigits, Gpt2], false),
        "gpt-4o" or "llama4" => ([O200kLlamaCpp], false),
        _ => null,
    };
}
