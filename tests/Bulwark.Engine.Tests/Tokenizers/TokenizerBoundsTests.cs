using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.ByteLevel;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Engine.Tokenizers.SentencePiece;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// No quadratic blow-up on hostile input (a megabyte of one letter is one pre-token), checked
/// by counting merge-heap operations rather than timing; input limits at, below and above;
/// the heap merge held against the plain scan it replaces.
/// </summary>
public sealed class TokenizerBoundsTests
{
    private const int Small = 64 * 1024;
    private const int Large = 1024 * 1024;

    /// <summary>16× the input may cost at most 24× the operations (linear with slack); quadratic would be 256×.</summary>
    private const double MaxGrowth = 1.5 * Large / Small;

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static TheoryData<string> Inputs => ["letters", "random"];

    private static byte[] Input(string kind, int length) => kind == "letters" ? Enumerable.Repeat((byte)'a', length).ToArray() : RandomBytes(length, length);

    [Theory]
    [InlineData("gpt2", "letters")]
    [InlineData("gpt2", "random")]
    [InlineData("cl100k_base", "letters")]
    [InlineData("cl100k_base", "random")]
    public void ByteLevelMergingGrowsLinearlyWithTheInput(string vocabulary, string kind)
    {
        var tokenizer = (ByteLevelBpeTokenizer)TiktokenVocabularies.Get(vocabulary).Ours;
        var small = tokenizer.MergeOperations(Input(kind, Small));
        var large = tokenizer.MergeOperations(Input(kind, Large));
        if (kind == "letters") Assert.True(small > Small / 4, $"{small} operations for {Small} letters: the merge did not run");
        Assert.True(large <= MaxGrowth * small, $"{vocabulary} {kind}: {small} operations for {Small} bytes, {large} for {Large} (> {MaxGrowth}×)");
    }

    [FixtureTheory]
    [MemberData(nameof(Inputs))]
    public void SentencePieceMergingGrowsLinearlyWithTheInput(string kind)
    {
        var tokenizer = (SentencePieceBpeTokenizer)TokenizerLoader.FromSentencePieceModel(Fixtures.PathOf("tokenizers", "llama2", "tokenizer.model"));
        var small = tokenizer.MergeOperations(Input(kind, Small));
        var large = tokenizer.MergeOperations(Input(kind, Large));
        if (kind == "letters") Assert.True(small > Small / 8, $"{small} operations for {Small} letters: the merge did not run");
        Assert.True(large <= MaxGrowth * small, $"llama2 {kind}: {small} operations for {Small} bytes, {large} for {Large} (> {MaxGrowth}×)");
    }

    [Fact]
    public void AMegabyteOfOneLetterEncodesAndDecodesBack()
    {
        var tokenizer = TiktokenVocabularies.Get("cl100k_base").Ours;
        var text = new string('a', Large);
        var ids = tokenizer.Encode(text, addSpecial: false);
        Assert.True(ids.Length < Large / 4, $"{ids.Length} tokens for {Large} letters");
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Fact]
    public void TheHeapMergeGivesWhatThePlainScanGives()
    {
        var tokenizer = (ByteLevelBpeTokenizer)TiktokenVocabularies.Get("gpt2").Ours;
        var alphabet = "  aaabbeeinnorsstt\n.,'1"u8.ToArray();
        var random = new Random(5);
        for (var word = 0; word < 3000; word++)
        {
            var length = random.Next(2, word < 2500 ? 80 : 600);
            var ids = new int[length];
            for (var i = 0; i < length; i++) ids[i] = tokenizer.ByteToken(alphabet[random.Next(alphabet.Length)]);
            var scanned = (int[])ids.Clone();
            var heaped = (int[])ids.Clone();
            var scanCount = BpeWordMerger.MergeByScan(scanned, tokenizer.Merges);
            var heapCount = BpeWordMerger.MergeByHeap(heaped, tokenizer.Merges);
            Assert.Equal(scanned.AsSpan(0, scanCount).ToArray(), heaped.AsSpan(0, heapCount).ToArray());
        }
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama2")]
    public void InputIsLimitedInUtf8BytesAtBelowAndAbove(string vocabulary)
    {
        if (vocabulary == "llama2" && !Fixtures.Available) return;
        var definition = vocabulary == "llama2"
            ? TokenizerLoader.ReadSentencePieceModel(Fixtures.PathOf("tokenizers", "llama2", "tokenizer.model"))
            : TiktokenVocabularies.Get(vocabulary).Definition;
        var tokenizer = TokenizerFactory.Create(definition, new TokenizerLimits { MaxInputBytes = 100 });
        Assert.NotEmpty(tokenizer.Encode(new string('x', 99)));
        Assert.NotEmpty(tokenizer.Encode(new string('x', 100)));
        Assert.NotEmpty(tokenizer.Encode(new string('é', 50))); // 100 UTF-8 bytes in 50 chars
        Assert.NotEmpty(tokenizer.EncodeUtf8(new byte[100]));
        var tooLong = Assert.Throws<TokenizerInputTooLongException>(() => tokenizer.Encode(new string('x', 101)));
        Assert.Equal("text must be at most 100 UTF-8 bytes; got 101 (Parameter 'text')", tooLong.Message);
        Assert.Equal(102, Assert.Throws<TokenizerInputTooLongException>(() => tokenizer.Encode(new string('é', 51))).Length);
        Assert.Throws<TokenizerInputTooLongException>(() => tokenizer.EncodeUtf8(new byte[101]));
        Assert.Throws<TokenizerInputTooLongException>(() => tokenizer.Encode(new string('x', 101).AsSpan(), [], addSpecial: false));
    }

    [Fact]
    public void TheDefaultLimitIs16MiB()
    {
        Assert.Equal(16 * 1024 * 1024, TokenizerLimits.Default.MaxInputBytes);
        var tokenizer = TiktokenVocabularies.Get("gpt2").Ours;
        Assert.Throws<TokenizerInputTooLongException>(() => tokenizer.EncodeUtf8(new byte[TokenizerLimits.Default.MaxInputBytes + 1]));
    }
}
