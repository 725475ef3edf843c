using System.Buffers;
using System.Text;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Tokenizers;

/// <summary>
/// What both algorithms share: the vocabulary tables, input limits, BOS/EOS, decoding.
/// Subclasses turn one stretch of plain text (specials already cut out) into ids.
/// </summary>
public abstract class Tokenizer : ITokenizer
{
    private readonly string[] _texts;
    private readonly TokenType[] _types;
    private readonly Dictionary<string, int> _idsByText;
    private readonly byte[][] _pieces;         // decode form, control tokens hidden
    private readonly byte[][] _renderedPieces; // decode form, control tokens spelled out

    [ThreadStatic] private static List<Fragment>? t_fragments;

    private protected Tokenizer(TokenizerDefinition definition, TokenizerLimits limits)
    {
        if (definition.Tokens.Count == 0) throw new ArgumentException("the vocabulary is empty", nameof(definition));
        if (definition.Types.Count != definition.Tokens.Count)
            throw new ArgumentException($"token types must have one entry per token ({definition.Tokens.Count}); got {definition.Types.Count}", nameof(definition));
        Model = definition.Model;
        Special = definition.Special;
        Limits = limits;
        AddSpacePrefix = definition.AddSpacePrefix && definition.Model == TokenizerModel.SentencePieceBpe;
        _texts = [.. definition.Tokens];
        _types = [.. definition.Types];
        _idsByText = new Dictionary<string, int>(_texts.Length, StringComparer.Ordinal);
        for (var id = 0; id < _texts.Length; id++) _idsByText.TryAdd(_texts[id], id);
        CheckSpecialId(definition.Special.Bos, "bos");
        CheckSpecialId(definition.Special.Eos, "eos");
        CheckSpecialId(definition.Special.Unknown, "unknown");
        CheckSpecialId(definition.Special.Padding, "padding");
        CheckSpecialId(definition.Special.EndOfTurn, "eot");
        Splitter = new SpecialTokenSplitter(_texts, _types);
        _pieces = new byte[_texts.Length][];
        _renderedPieces = new byte[_texts.Length][];
        for (var id = 0; id < _texts.Length; id++)
        {
            var isSpecial = _types[id] is TokenType.Control or TokenType.Unknown;
            _renderedPieces[id] = isSpecial ? Encoding.UTF8.GetBytes(_texts[id]) : DecodedPiece(id, _texts[id], _types[id]);
            _pieces[id] = isSpecial ? [] : _renderedPieces[id];
        }
    }

    private void CheckSpecialId(int id, string name)
    {
        if (id < -1 || id >= _texts.Length)
            throw new ArgumentException($"{name} token id must be between 0 and {_texts.Length - 1}; got {id}");
    }

    public TokenizerModel Model { get; }

    public int VocabSize => _texts.Length;

    public SpecialTokens Special { get; }

    public TokenizerLimits Limits { get; }

    /// <summary>SentencePiece only: '▁' is put before text at the start and after a special token.</summary>
    public bool AddSpacePrefix { get; }

    private protected SpecialTokenSplitter Splitter { get; }

    private int _maxInputBytesPerToken = -1;

    public int MaxInputBytesPerToken
    {
        get
        {
            if (_maxInputBytesPerToken >= 0) return _maxInputBytesPerToken;
            // Every token stands for a stretch of the input: a special's spelling, one byte (a byte token, or an
            // unknown token in its place), or a merged piece (InputBytesAtMost).
            var most = 0;
            if (EveryByteHasToken)
            {
                most = 1;
                for (var id = 0; id < _texts.Length; id++) most = Math.Max(most, InputBytesAtMost(_texts[id], _renderedPieces[id]));
            }
            return _maxInputBytesPerToken = most;
        }
    }

    /// <summary>
    /// The most input bytes a token of this text and decoded piece (control tokens spelled out) can stand for:
    /// here the longer of its piece and its text in UTF-8, which SentencePiece needs (a '▁' in a token's text
    /// is a space, 1 byte, or a '▁' the user typed, 3 bytes, and merges join any tokens' texts).
    /// </summary>
    private protected virtual int InputBytesAtMost(string text, byte[] piece) => Math.Max(piece.Length, Encoding.UTF8.GetByteCount(text));

    /// <summary>Whether each byte a text can hold becomes at least one token when no longer piece covers it.</summary>
    private protected virtual bool EveryByteHasToken => true;

    public string TokenText(int id) => _texts[CheckId(id)];

    public TokenType TypeOf(int id) => _types[CheckId(id)];

    public int IdOf(string text) => _idsByText.TryGetValue(text, out var id) ? id : -1;

    private int CheckId(int id)
    {
        if ((uint)id >= (uint)_texts.Length) TokenizerThrow.IdOutOfRange(id, _texts.Length);
        return id;
    }

    /// <summary>The bytes token <paramref name="id"/> decodes to when it is not a control token.</summary>
    private protected abstract byte[] DecodedPiece(int id, string text, TokenType type);

    /// <summary>Encodes text with no specials left in it except those the splitter finds.</summary>
    private protected abstract void EncodeText(ReadOnlySpan<char> text, List<int> output, bool parseSpecial);

    private protected abstract void EncodeBytes(ReadOnlySpan<byte> utf8, List<int> output, bool parseSpecial);

    public int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length / 3 + 2);
        Encode(text.AsSpan(), output, addSpecial, parseSpecial);
        return [.. output];
    }

    public void Encode(ReadOnlySpan<char> text, List<int> output, bool addSpecial = true, bool parseSpecial = false)
    {
        Limits.CheckInputLength(Encoding.UTF8.GetByteCount(text));
        AddBos(output, addSpecial);
        // A .NET string may hold a lone surrogate; UTF-8 cannot, so it is read as U+FFFD,
        // exactly what encoding the string to UTF-8 for llama.cpp would do.
        if (Utf8Text.HasLoneSurrogate(text)) EncodeText(Utf8Text.ReplaceLoneSurrogates(text), output, parseSpecial);
        else EncodeText(text, output, parseSpecial);
        AddEos(output, addSpecial);
    }

    public int CountTokensAtLeast(ReadOnlySpan<char> text, int stopAt, bool addSpecial = true)
    {
        var specials = (addSpecial && Special.AddBos && Special.Bos >= 0 ? 1 : 0) + (addSpecial && Special.AddEos && Special.Eos >= 0 ? 1 : 0);
        if (specials >= stopAt) return stopAt;
        // As Encode: a lone surrogate is read as U+FFFD, which the pre-tokenizer may class differently.
        var count = specials + (Utf8Text.HasLoneSurrogate(text)
            ? CountTextTokensAtLeast(Utf8Text.ReplaceLoneSurrogates(text), stopAt - specials)
            : CountTextTokensAtLeast(text, stopAt - specials));
        return (int)Math.Min(count, stopAt);
    }

    /// <summary>A lower bound of the tokens of <paramref name="text"/> (no specials parsed, none added); may stop counting at <paramref name="stopAt"/>.</summary>
    private protected virtual long CountTextTokensAtLeast(ReadOnlySpan<char> text, int stopAt)
    {
        var perToken = MaxInputBytesPerToken;
        return perToken == 0 ? 0 : (Encoding.UTF8.GetByteCount(text) + perToken - 1L) / perToken;
    }

    public int[] EncodeUtf8(ReadOnlySpan<byte> utf8, bool addSpecial = true, bool parseSpecial = false)
    {
        Limits.CheckInputLength(utf8.Length);
        var output = new List<int>(utf8.Length / 3 + 2);
        AddBos(output, addSpecial);
        EncodeBytes(utf8, output, parseSpecial);
        AddEos(output, addSpecial);
        return [.. output];
    }

    private void AddBos(List<int> output, bool addSpecial)
    {
        if (addSpecial && Special.AddBos && Special.Bos >= 0) output.Add(Special.Bos);
    }

    private void AddEos(List<int> output, bool addSpecial)
    {
        if (addSpecial && Special.AddEos && Special.Eos >= 0) output.Add(Special.Eos);
    }

    /// <summary>A per-thread fragment list, so splitting text allocates nothing after warm-up.</summary>
    private protected List<Fragment> SplitSpecials(ReadOnlySpan<char> text, bool parseSpecial)
    {
        var fragments = t_fragments ??= new List<Fragment>();
        fragments.Clear();
        Splitter.Split(text, parseSpecial, fragments);
        return fragments;
    }

    private protected List<Fragment> SplitSpecials(ReadOnlySpan<byte> text, bool parseSpecial)
    {
        var fragments = t_fragments ??= new List<Fragment>();
        fragments.Clear();
        Splitter.Split(text, parseSpecial, fragments);
        return fragments;
    }

    public ReadOnlySpan<byte> TokenBytes(int id, bool renderSpecial = false) =>
        renderSpecial ? _renderedPieces[CheckId(id)] : _pieces[CheckId(id)];

    /// <summary>
    /// The piece of the first token of a decode: SentencePiece drops the one space that
    /// <see cref="AddSpacePrefix"/> put there (llama.cpp's <c>llama_detokenize</c> does the same).
    /// </summary>
    internal ReadOnlySpan<byte> FirstTokenBytes(int id, bool renderSpecial)
    {
        var piece = TokenBytes(id, renderSpecial);
        return AddSpacePrefix && piece.Length > 0 && piece[0] == (byte)' ' ? piece[1..] : piece;
    }

    public string Decode(ReadOnlySpan<int> ids, bool renderSpecial = false)
    {
        if (ids.Length == 0) return "";
        var total = 0;
        foreach (var id in ids) total += TokenBytes(id, renderSpecial).Length;
        var buffer = ClearingArrayPool<byte>.Rent(Math.Max(total, 1));
        try
        {
            var first = FirstTokenBytes(ids[0], renderSpecial);
            first.CopyTo(buffer);
            var length = first.Length;
            for (var i = 1; i < ids.Length; i++)
            {
                var piece = TokenBytes(ids[i], renderSpecial);
                piece.CopyTo(buffer.AsSpan(length));
                length += piece.Length;
            }
            return Encoding.UTF8.GetString(buffer, 0, length);
        }
        finally
        {
            ClearingArrayPool<byte>.Return(buffer);
        }
    }

    public IncrementalDecoder CreateIncrementalDecoder(bool renderSpecial = false) => new(this, renderSpecial);
}
