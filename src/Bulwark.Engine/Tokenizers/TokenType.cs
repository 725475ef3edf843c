namespace Bulwark.Engine.Tokenizers;

/// <summary>
/// What a vocabulary entry is. The numbers are GGUF's <c>tokenizer.ggml.token_type</c> values,
/// which are SentencePiece's piece types, so the three sources share one enum.
/// </summary>
public enum TokenType
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    /// <summary>BOS, EOS, chat markers: only operator text may spell them (parseSpecial).</summary>
    Control = 3,
    /// <summary>Added tokens that are not special: matched in every text, user text included.</summary>
    UserDefined = 4,
    Unused = 5,
    /// <summary>SentencePiece byte-fallback piece <c>&lt;0xAB&gt;</c>.</summary>
    Byte = 6,
}
