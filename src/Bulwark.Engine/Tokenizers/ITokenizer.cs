namespace Bulwark.Engine.Tokenizers;

/// <summary>
/// Text to token ids and back. Thread-safe: one instance serves every request.
/// <para>
/// Security: <c>parseSpecial</c> decides whether the text may spell control tokens such as
/// <c>&lt;|im_start|&gt;</c> or <c>&lt;s&gt;</c>. It must stay false for anything a user wrote;
/// only operator text and rendered chat templates may pass true.
/// </para>
/// </summary>
public interface ITokenizer
{
    TokenizerModel Model { get; }

    int VocabSize { get; }

    SpecialTokens Special { get; }

    TokenizerLimits Limits { get; }

    /// <summary>
    /// The most input bytes one token of an encoding can stand for: the longest text or decoded piece of
    /// any token (control tokens spelled out), at least 1. So a text of <c>B</c> UTF-8 bytes encodes to at least
    /// <c>⌈B / MaxInputBytesPerToken⌉</c> tokens, which lets a server refuse a prompt over the context
    /// without encoding it. 0 when no such bound holds: a vocabulary where some byte has no token at all
    /// (a SentencePiece one with neither byte tokens nor an unknown token drops such bytes).
    /// </summary>
    int MaxInputBytesPerToken { get; }

    /// <summary>The token's text as the vocabulary stores it (byte-level or '▁' form).</summary>
    string TokenText(int id);

    TokenType TypeOf(int id);

    /// <summary>The id of a token spelled exactly <paramref name="text"/> in the vocabulary, or -1.</summary>
    int IdOf(string text);

    /// <summary>Encodes text. <paramref name="addSpecial"/> adds BOS/EOS as the model asks.</summary>
    int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false);

    /// <summary>
    /// A lower bound of <c>Encode(text, addSpecial).Length</c> (specials not parsed) found without encoding, counted
    /// only until it reaches <paramref name="stopAt"/> (the result is at most that): byte-level BPE counts the
    /// pre-tokenizer's pieces, which no token spans, and the specials cut out; SentencePiece, whose merges run over
    /// the whole text, gives <c>⌈bytes / MaxInputBytesPerToken⌉</c>. Allocates nothing for text without lone
    /// surrogates, so a prompt far over a context is refused without its token ids.
    /// </summary>
    int CountTokensAtLeast(ReadOnlySpan<char> text, int stopAt, bool addSpecial = true);

    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="output"/>.</summary>
    void Encode(ReadOnlySpan<char> text, List<int> output, bool addSpecial = true, bool parseSpecial = false);

    /// <summary>Encodes raw UTF-8 bytes, which may be invalid; invalid bytes are handled as llama.cpp does.</summary>
    int[] EncodeUtf8(ReadOnlySpan<byte> utf8, bool addSpecial = true, bool parseSpecial = false);

    /// <summary>The bytes token <paramref name="id"/> stands for when decoded (empty for hidden control tokens).</summary>
    ReadOnlySpan<byte> TokenBytes(int id, bool renderSpecial = false);

    /// <summary>Decodes ids to text; invalid UTF-8 becomes U+FFFD. Control tokens are dropped unless <paramref name="renderSpecial"/>.</summary>
    string Decode(ReadOnlySpan<int> ids, bool renderSpecial = false);

    /// <summary>A streaming decoder: feed ids one by one, get text that never splits a UTF-8 sequence.</summary>
    IncrementalDecoder CreateIncrementalDecoder(bool renderSpecial = false);
}
