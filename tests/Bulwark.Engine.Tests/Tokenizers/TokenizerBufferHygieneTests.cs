using System.Collections.Concurrent;
using System.Text;
using Bulwark.Engine.Memory;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// Issue 25: the pooled buffers tokenizers fill with a request's text and token ids are cleared when
/// they go back to the pool. Each test first proves the text did pass through a pooled buffer (so the
/// absence afterwards means something), then reads those buffers again.
/// </summary>
public sealed class TokenizerBufferHygieneTests
{
    // One pre-token of 600 letters: over the stack buffers (512 bytes, 256 ids), so the pool is used.
    private static string Marker(int seed)
    {
        var random = new Random(seed);
        return new string(Enumerable.Range(0, 600).Select(_ => (char)('a' + random.Next(26))).ToArray());
    }

    private static bool Contains<T>(T[] haystack, ReadOnlySpan<T> needle) where T : IEquatable<T> =>
        needle.Length > 0 && haystack.AsSpan().IndexOf(needle) >= 0;

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama2")]
    public void EncodingAndDecodingLeaveNoTextOrIdsInThePool(string vocabulary)
    {
        var tokenizer = vocabulary == "gpt2"
            ? TiktokenVocabularies.Get("gpt2").Ours
            : TokenizerLoader.FromSentencePieceModel(Fixtures.PathOf("tokenizers", "llama2", "tokenizer.model"));
        var text = Marker(vocabulary.Length * 7919);
        var textBytes = Encoding.UTF8.GetBytes(text)[..64];
        var bytesSeen = new ConcurrentBag<byte[]>();
        var idsSeen = new ConcurrentBag<int[]>();
        int[] ids = [];
        Action<byte[]> onBytes = a => { if (Contains(a, textBytes)) bytesSeen.Add(a); };
        Action<int[]> onIds = a => { if (Contains(a, ids.AsSpan(0, Math.Min(16, ids.Length)))) idsSeen.Add(a); };
        ClearingArrayPool<byte>.Returning += onBytes;
        ClearingArrayPool<int>.Returning += onIds;
        try
        {
            ids = tokenizer.Encode(text, addSpecial: false);
            Assert.Equal(text, tokenizer.Decode(ids).TrimStart());
            ids = tokenizer.Encode(text, addSpecial: false); // the ids are known now: catch the buffers that held them
        }
        finally
        {
            ClearingArrayPool<byte>.Returning -= onBytes;
            ClearingArrayPool<int>.Returning -= onIds;
        }

        Assert.NotEmpty(bytesSeen);
        if (vocabulary == "gpt2") Assert.NotEmpty(idsSeen); // the byte-level merger pools its ids; SentencePiece merges offsets
        Assert.All(bytesSeen, a => Assert.False(Contains(a, textBytes), "a pooled byte buffer still holds the text"));
        var head = ids.AsSpan(0, 16).ToArray();
        Assert.All(idsSeen, a => Assert.False(Contains(a, head), "a pooled id buffer still holds the token ids"));
    }
}
