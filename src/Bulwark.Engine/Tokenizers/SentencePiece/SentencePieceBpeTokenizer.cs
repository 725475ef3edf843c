using System.Buffers;
using System.Globalization;
using System.Text;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Tokenizers.SentencePiece;

/// <summary>
/// SentencePiece BPE as llama.cpp runs it (Llama 2, TinyLlama, Mistral): spaces become '▁',
/// '▁' is prefixed at the start and after specials, text starts as one symbol per UTF-8
/// character, the adjacent pair whose joined text is the highest-scoring token merges first
/// (leftmost on ties), and a symbol that is no token falls back to its <c>&lt;0xAB&gt;</c> bytes.
/// </summary>
internal sealed class SentencePieceBpeTokenizer : Tokenizer
{
    private static readonly byte[] SpaceMarker = "\u2581"u8.ToArray();

    private readonly ByteSequenceMap _idsByBytes;
    private readonly float[] _scores;
    private readonly int[] _byteTokens = new int[256];

    public SentencePieceBpeTokenizer(TokenizerDefinition definition, TokenizerLimits limits)
        : base(definition, limits)
    {
        var scores = definition.Scores ?? throw new ArgumentException("SentencePiece needs scores", nameof(definition));
        if (scores.Count != VocabSize)
            throw new ArgumentException($"scores must have one entry per token ({VocabSize}); got {scores.Count}", nameof(definition));
        _scores = [.. scores];
        _idsByBytes = new ByteSequenceMap(VocabSize);
        for (var id = 0; id < VocabSize; id++) _idsByBytes.TryAdd(Encoding.UTF8.GetBytes(TokenText(id)), id);
        for (var b = 0; b < 256; b++) _byteTokens[b] = ByteFallbackToken((byte)b);
    }

    /// <summary>A symbol that is no token falls back to its bytes; a byte with neither a byte token nor an unknown token is dropped.</summary>
    private protected override bool EveryByteHasToken => Array.TrueForAll(_byteTokens, id => id >= 0);

    private int ByteFallbackToken(byte b)
    {
        var id = IdOf($"<0x{b:X2}>");
        if (id >= 0) return id;
        id = _idsByBytes.GetOrMinusOne([b]);
        return id >= 0 ? id : Special.Unknown;
    }

    private protected override byte[] DecodedPiece(int id, string text, TokenType type) => type switch
    {
        TokenType.Normal or TokenType.Undefined => Encoding.UTF8.GetBytes(text.Replace('\u2581', ' ')),
        TokenType.UserDefined => Encoding.UTF8.GetBytes(text),
        TokenType.Byte when text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal)
            && byte.TryParse(text.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b) => [b],
        _ => [],
    };

    // UTF-8 with lone surrogates as U+FFFD, the bytes llama.cpp would be given for this string.
    private protected override void EncodeText(ReadOnlySpan<char> text, List<int> output, bool parseSpecial)
    {
        var rented = ClearingArrayPool<byte>.Rent(Math.Max(1, Encoding.UTF8.GetMaxByteCount(text.Length)));
        try
        {
            var length = Encoding.UTF8.GetBytes(text, rented);
            EncodeBytes(rented.AsSpan(0, length), output, parseSpecial);
        }
        finally
        {
            ClearingArrayPool<byte>.Return(rented);
        }
    }

    private protected override void EncodeBytes(ReadOnlySpan<byte> utf8, List<int> output, bool parseSpecial)
    {
        var previousWasSpecial = true; // the start counts as "after a special" for the space prefix
        foreach (var fragment in SplitSpecials(utf8, parseSpecial))
        {
            if (!fragment.IsText)
            {
                output.Add(fragment.TokenId);
                previousWasSpecial = true;
                continue;
            }
            EncodeFragment(utf8.Slice(fragment.Start, fragment.Length), AddSpacePrefix && previousWasSpecial, output);
            previousWasSpecial = false;
        }
    }

    /// <summary>The merge heap operations encoding <paramref name="utf8"/> (no specials) takes: how tests check it stays linear.</summary>
    internal long MergeOperations(ReadOnlySpan<byte> utf8) => EncodeFragment(utf8, AddSpacePrefix, []);

    private long EncodeFragment(ReadOnlySpan<byte> text, bool prefixSpace, List<int> output)
    {
        var spaces = text.Count((byte)' ');
        var length = text.Length + spaces * (SpaceMarker.Length - 1) + (prefixSpace ? SpaceMarker.Length : 0);
        var rented = ClearingArrayPool<byte>.Rent(length);
        try
        {
            var escaped = rented.AsSpan(0, length);
            var n = 0;
            if (prefixSpace) { SpaceMarker.CopyTo(escaped); n = SpaceMarker.Length; }
            foreach (var b in text)
            {
                if (b == (byte)' ') { SpaceMarker.CopyTo(escaped[n..]); n += SpaceMarker.Length; }
                else escaped[n++] = b;
            }
            return new SentencePieceMerger(escaped, _idsByBytes, _scores).Run(output, _byteTokens);
        }
        finally
        {
            ClearingArrayPool<byte>.Return(rented);
        }
    }
}
