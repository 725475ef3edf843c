using System.Runtime.CompilerServices;
using System.Text;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// A deterministic backend for testing the HTTP layer: one token per UTF-8 byte (ids 0..255),
/// id 256 is end-of-sequence. Greedy requests (temperature 0) spell <see cref="Reply"/> over and
/// over; sampled ones draw letters from a generator seeded by the request's seed. It counts the
/// sequences it is running, so tests can see that cancellation frees them.
/// </summary>
public sealed class ScriptedBackend : IGenerationBackend, IDisposable
{
    public const int EndOfSequence = 256;

    private int _active;
    private int _started;

    public ScriptedBackend(int contextLength = 256, string id = "test-model") =>
        Model = new ModelCard(id, contextLength, 257, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), Notice: "test weights");

    /// <summary>Set once the server disposed this backend (a replaced or unloaded model, after its last request).</summary>
    public bool Disposed { get; private set; }

    public void Dispose() => Disposed = true;

    public ModelCard Model { get; }

    public string Reply { get; init; } = "Hello from the scripted backend. ";

    /// <summary>When set, the sequence ends with end-of-sequence after this many tokens.</summary>
    public int? EndAfter { get; init; }

    /// <summary>Awaited before each token: tests hold generation here to fill queues or to disconnect mid-stream.</summary>
    public Func<CancellationToken, Task>? BeforeEachToken { get; set; }

    public int ActiveSequences => Volatile.Read(ref _active);

    public int StartedSequences => Volatile.Read(ref _started);

    public List<GenerationRequest> Requests { get; } = [];

    public int[] Encode(string text, bool addSpecialTokens) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();

    public string Decode(ReadOnlySpan<int> tokenIds)
    {
        var bytes = new byte[tokenIds.Length];
        for (var i = 0; i < tokenIds.Length; i++)
        {
            if (tokenIds[i] is < 0 or > EndOfSequence) throw new ArgumentOutOfRangeException(nameof(tokenIds));
            bytes[i] = tokenIds[i] == EndOfSequence ? (byte)0 : (byte)tokenIds[i];
        }
        return Encoding.UTF8.GetString(bytes);
    }

    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages) =>
        Encode(string.Concat(messages.Select(m => $"<{m.Role}>{m.Content}\n")) + "<assistant>", false);

    public BackendStatistics Statistics => new(ActiveSequences, 0, ActiveSequences / 10.0, 7, 3, 0);

    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        lock (Requests) Requests.Add(request);
        Interlocked.Increment(ref _active);
        Interlocked.Increment(ref _started);
        try
        {
            var reply = Encoding.UTF8.GetBytes(Reply);
            var random = new Random(unchecked((int)(request.Sampling.Seed ?? (ulong)Random.Shared.Next())));
            var decoder = Encoding.UTF8.GetDecoder();
            var chars = new char[4];
            for (var i = 0; i < request.MaxTokens; i++)
            {
                if (BeforeEachToken is { } wait) await wait(cancellationToken);
                await Task.Yield();
                cancellationToken.ThrowIfCancellationRequested();
                if (EndAfter is { } end && i == end)
                {
                    yield return new GeneratedToken(-1, "", FinishReason.Stop);
                    yield break;
                }
                var id = request.Sampling.Temperature == 0 ? reply[i % reply.Length] : (byte)"abcdefgh "[random.Next(9)];
                var n = decoder.GetChars([(byte)id], 0, 1, chars, 0);
                var finish = i == request.MaxTokens - 1 ? FinishReason.Length : FinishReason.None;
                TokenLogprob[]? top = request.TopLogprobs is { } k
                    ? Enumerable.Range(0, k).Select(j => new TokenLogprob((id + j) % 256, ((char)((id + j) % 128)).ToString(), -0.5f - j)).ToArray()
                    : null;
                yield return new GeneratedToken(id, new string(chars, 0, n), finish, -0.5f, top);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _active);
        }
    }
}
