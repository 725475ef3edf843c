using System.Buffers;
using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using System.Text;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Tokenizers.ByteLevel;

/// <summary>
/// Byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM, tiktoken vocabularies): specials are cut
/// out, the pre-tokenizer regexes split the rest into pieces, each piece's UTF-8 bytes start
/// as byte tokens and merge by rank.
/// </summary>
internal sealed class ByteLevelBpeTokenizer : Tokenizer
{
    /// <summary>Pieces up to this many chars are cached; longer ones are rare and would crowd the cache.</summary>
    private const int CachedPieceLimit = 48;
    private const int CacheCapacity = 1 << 16;

    private readonly Regex[] _stages;
    private readonly BpeMergeTable _merges;
    private readonly int[] _byteTokens = new int[256];
    private readonly ByteSequenceMap _idsByBytes;
    private readonly bool _ignoreMerges;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;

    public ByteLevelBpeTokenizer(TokenizerDefinition definition, TokenizerLimits limits)
        : base(definition, limits)
    {
        var merges = definition.Merges ?? throw new ArgumentException("byte-level BPE needs merges", nameof(definition));
        _ignoreMerges = definition.IgnoreMerges;
        _stages = [.. definition.PreTokenizerPatterns.Select(p =>
            new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture))];
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();

        _idsByBytes = new ByteSequenceMap(VocabSize);
        for (var id = 0; id < VocabSize; id++)
        {
            // Only ordinary tokens take part in BPE; specials are reached through the splitter.
            if (TypeOf(id) is not (TokenType.Normal or TokenType.Undefined)) continue;
            if (ByteLevelAlphabet.TryDecode(TokenText(id), out var bytes)) _idsByBytes.TryAdd(bytes, id);
        }
        for (var b = 0; b < 256; b++)
        {
            if (!_idsByBytes.TryGet([(byte)b], out _byteTokens[b]))
                throw new ArgumentException($"byte-level vocabulary has no token for byte 0x{b:X2} ('{ByteLevelAlphabet.ToChar((byte)b)}')", nameof(definition));
        }

        _merges = new BpeMergeTable(merges.Count);
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            var leftId = IdOf(left);
            var rightId = IdOf(right);
            var resultId = IdOf(left + right);
            // A merge whose parts or result are not tokens can never fire on token ids; skip it.
            if (leftId < 0 || rightId < 0 || resultId < 0) continue;
            _merges.Add(leftId, rightId, rank, resultId);
        }
    }

    private protected override byte[] DecodedPiece(int id, string text, TokenType type) => type switch
    {
        TokenType.Normal or TokenType.Undefined => ByteLevelAlphabet.TryDecode(text, out var bytes) ? bytes : Encoding.UTF8.GetBytes(text),
        TokenType.UserDefined => Encoding.UTF8.GetBytes(text),
        _ => [],
    };

    /// <summary>
    /// A merged token stands for one input byte per character of its text (each byte starts as one alphabet
    /// character, merges join texts); a special matched by the splitter for its spelling, which is its piece.
    /// </summary>
    private protected override int InputBytesAtMost(string text, byte[] piece) => Math.Max(piece.Length, text.Length);

    private protected override void EncodeBytes(ReadOnlySpan<byte> utf8, List<int> output, bool parseSpecial) =>
        EncodeText(Utf8Text.DecodeLenient(utf8), output, parseSpecial);

    private protected override void EncodeText(ReadOnlySpan<char> text, List<int> output, bool parseSpecial)
    {
        foreach (var fragment in SplitSpecials(text, parseSpecial))
        {
            if (fragment.IsText) PreTokenize(text.Slice(fragment.Start, fragment.Length), 0, output);
            else output.Add(fragment.TokenId);
        }
    }

    /// <summary>Every piece of the pre-tokenizer is at least one token, and every special cut out one.</summary>
    private protected override long CountTextTokensAtLeast(ReadOnlySpan<char> text, int stopAt)
    {
        long count = 0;
        foreach (var fragment in SplitSpecials(text, parseSpecial: false))
        {
            if (count >= stopAt) break;
            count += fragment.IsText ? CountPieces(text.Slice(fragment.Start, fragment.Length), 0, stopAt - count) : 1;
        }
        return count;
    }

    /// <summary><see cref="PreTokenize"/>'s pieces, counted instead of encoded, until <paramref name="stopAt"/>.</summary>
    private long CountPieces(ReadOnlySpan<char> text, int stage, long stopAt)
    {
        if (text.IsEmpty) return 0;
        if (stage == _stages.Length) return 1;
        long count = 0;
        var position = 0;
        foreach (var match in _stages[stage].EnumerateMatches(text))
        {
            if (count >= stopAt) return count;
            if (match.Length == 0) continue;
            if (match.Index > position) count += CountPieces(text[position..match.Index], stage + 1, stopAt - count);
            count += CountPieces(text.Slice(match.Index, match.Length), stage + 1, stopAt - count);
            position = match.Index + match.Length;
        }
        if (position < text.Length && count < stopAt) count += CountPieces(text[position..], stage + 1, stopAt - count);
        return count;
    }

    /// <summary>Splits with regex <paramref name="stage"/>: matches and the gaps between them are both pieces.</summary>
    private void PreTokenize(ReadOnlySpan<char> text, int stage, List<int> output)
    {
        if (stage == _stages.Length)
        {
            EncodePiece(text, output);
            return;
        }
        var position = 0;
        foreach (var match in _stages[stage].EnumerateMatches(text))
        {
            if (match.Length == 0) continue;
            if (match.Index > position) PreTokenize(text[position..match.Index], stage + 1, output);
            PreTokenize(text.Slice(match.Index, match.Length), stage + 1, output);
            position = match.Index + match.Length;
        }
        if (position < text.Length) PreTokenize(text[position..], stage + 1, output);
    }

    private void EncodePiece(ReadOnlySpan<char> piece, List<int> output)
    {
        var cacheable = piece.Length <= CachedPieceLimit;
        if (cacheable && _cacheBySpan.TryGetValue(piece, out var cached))
        {
            output.AddRange(cached);
            return;
        }

        var maxBytes = Utf8Text.MaxBytes(piece.Length);
        byte[]? rentedBytes = null;
        int[]? rentedIds = null;
        var bytes = maxBytes <= 512 ? stackalloc byte[512] : (rentedBytes = ClearingArrayPool<byte>.Rent(maxBytes));
        try
        {
            var length = Utf8Text.Encode(piece, bytes);
            var pieceBytes = bytes[..length];
            if (_ignoreMerges && _idsByBytes.TryGet(pieceBytes, out var whole))
            {
                output.Add(whole);
                if (cacheable) Remember(piece, [whole]);
                return;
            }

            var ids = length <= 256 ? stackalloc int[256] : (rentedIds = ClearingArrayPool<int>.Rent(length));
            for (var i = 0; i < length; i++) ids[i] = _byteTokens[pieceBytes[i]];
            var count = BpeWordMerger.Merge(ids[..length], _merges);
            var merged = ids[..count];
            foreach (var id in merged) output.Add(id);
            if (cacheable) Remember(piece, merged.ToArray());
        }
        finally
        {
            // The piece's bytes and ids on the stack are cleared too: a stack frame keeps them until reused.
            if (rentedBytes is not null) ClearingArrayPool<byte>.Return(rentedBytes);
            else bytes.Clear();
            if (rentedIds is not null) ClearingArrayPool<int>.Return(rentedIds);
        }
    }

    /// <summary>
    /// The heap operations merging <paramref name="piece"/> as one pre-token takes (a long run of
    /// one letter is one pre-token): how tests check merging stays linear without timing it.
    /// </summary>
    internal long MergeOperations(ReadOnlySpan<byte> piece)
    {
        var ids = new int[piece.Length];
        for (var i = 0; i < piece.Length; i++) ids[i] = _byteTokens[piece[i]];
        BpeWordMerger.MergeByHeap(ids, _merges, out var operations);
        return operations;
    }

    /// <summary>The merge table, for tests that hold the fast merge against its slow twin.</summary>
    internal BpeMergeTable Merges => _merges;

    /// <summary>The token of one raw byte (the starting symbols of every piece).</summary>
    internal int ByteToken(byte b) => _byteTokens[b];

    private void Remember(ReadOnlySpan<char> piece, int[] ids)
    {
        // Bounded: once full, the cache stops growing rather than evicting (no per-call bookkeeping).
        if (_cache.Count < CacheCapacity) _cacheBySpan.TryAdd(piece, ids);
    }
}
