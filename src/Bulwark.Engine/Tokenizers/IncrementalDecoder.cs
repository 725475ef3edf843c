using System.Text;

namespace Bulwark.Engine.Tokenizers;

/// <summary>
/// Streams text from ids as they are generated. A token may end in the middle of a UTF-8
/// sequence (byte-fallback and byte-level tokens often do); those bytes are held back until
/// the sequence completes, so no half character and no spurious U+FFFD reaches a client.
/// Joining everything <see cref="Push"/> and <see cref="Flush"/> return gives exactly
/// <see cref="ITokenizer.Decode"/> of the same ids. Not thread-safe: one per sequence.
/// </summary>
public sealed class IncrementalDecoder
{
    private readonly Tokenizer _tokenizer;
    private readonly bool _renderSpecial;
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private char[] _chars = new char[64];
    private bool _started;

    internal IncrementalDecoder(Tokenizer tokenizer, bool renderSpecial)
    {
        _tokenizer = tokenizer;
        _renderSpecial = renderSpecial;
    }

    /// <summary>Adds one token; returns the text that is now complete (often empty mid-character).</summary>
    public string Push(int id)
    {
        var bytes = _started ? _tokenizer.TokenBytes(id, _renderSpecial) : _tokenizer.FirstTokenBytes(id, _renderSpecial);
        _started = true;
        return Convert(bytes, flush: false);
    }

    /// <summary>Ends the stream: bytes still waiting for the rest of their character become U+FFFD.</summary>
    public string Flush() => Convert([], flush: true);

    private string Convert(ReadOnlySpan<byte> bytes, bool flush)
    {
        var needed = _utf8.GetCharCount(bytes, flush);
        if (needed == 0)
        {
            // Still feed the decoder so it keeps the partial sequence.
            _utf8.GetChars(bytes, _chars, flush);
            return "";
        }
        if (needed > _chars.Length) _chars = new char[Math.Max(needed, _chars.Length * 2)];
        var written = _utf8.GetChars(bytes, _chars, flush);
        return new string(_chars, 0, written);
    }
}
