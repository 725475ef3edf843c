using System.Runtime.CompilerServices;
using System.Text;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// A deterministic backend for testing the HTTP layer: one token per UTF-8 byte (ids 0..255),
/// id 256 is end-of-sequence. Greedy requests (temperature 0) spell <see cref="Reply"/> over and
/// over; sampled ones draw letters from a generator seeded by the request's seed (choice i: seed + i).
/// Like every backend it applies the request's stop strings and generates its n choices itself,
/// one token of each in turn. It counts the sequences (choices) it is running, so tests can see
/// that cancellation frees them.
/// </summary>
public sealed class ScriptedBackend : IGenerationBackend, ITokenizingBackend, IDisposable
{
    public const int EndOfSequence = 256;

    private int _active;
    private int _started;
    private int _prepared;

    public ScriptedBackend(int contextLength = 256, string id = "test-model") =>
        Model = new ModelCard(id, contextLength, 257, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), Notice: "test weights");

    /// <summary>Set once the server disposed this backend (a replaced or unloaded model, after its last request).</summary>
    public bool Disposed { get; private set; }

    public void Dispose() => Disposed = true;

    public ModelCard Model { get; private set; }

    /// <summary>How the scripted model writes tool calls (its card's <see cref="ModelCard.ToolFormat"/>): set it to have calls parsed from <see cref="Reply"/>.</summary>
    public Bulwark.Engine.Tools.ToolCallFormat ToolFormat
    {
        get => Model.ToolFormat;
        init => Model = Model with { ToolFormat = value };
    }

    public string Reply { get; init; } = "Hello from the scripted backend. ";

    /// <summary>When set, greedy choice i spells <c>ChoiceReplies[i % Count]</c> instead of <see cref="Reply"/>.</summary>
    public IReadOnlyList<string>? ChoiceReplies { get; init; }

    /// <summary>While set, every request fails with an internal error before anything is sent (the server answers 500).</summary>
    public bool Fail { get; set; }

    /// <summary>Prompts rendered and tokenized so far (the prompt stage, stage 6).</summary>
    public int PreparedPrompts => Volatile.Read(ref _prepared);

    /// <summary>When set, every choice ends with end-of-sequence after this many tokens.</summary>
    public int? EndAfter { get; init; }

    /// <summary>Awaited before each token: tests hold generation here to fill queues or to disconnect mid-stream.</summary>
    public Func<CancellationToken, Task>? BeforeEachToken { get; set; }

    public int ActiveSequences => Volatile.Read(ref _active);

    public int StartedSequences => Volatile.Read(ref _started);

    /// <summary>Every call the spine made, in order.</summary>
    public List<BackendCall> Requests { get; } = [];

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

    /// <summary>The scripted model's template shows no tools (a tools request's prompt is the messages alone).</summary>
    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages, System.Text.Json.JsonElement? tools = null) =>
        Encode(string.Concat(messages.Select(m => $"<{m.Role}>{m.Content}\n")) + "<assistant>", false);

    public PreparedPrompt Prepare(GenerationRequest request)
    {
        Interlocked.Increment(ref _prepared);
        if (Fail) throw new InvalidOperationException("the scripted backend was told to fail");
        if (request.Messages is { } messages) return PreparedPrompt.Exact(EncodeChat(messages));
        if (request.Prompt!.TokenIds is { } ids) return PreparedPrompt.Exact(ids);
        var tokens = Encode(request.Prompt.Text!, true);
        if (tokens.Length == 0) throw ApiException.Invalid("prompt", "prompt must not be empty.");
        return PreparedPrompt.Exact(tokens);
    }

    public BackendStatistics Statistics => new(ActiveSequences, 0, ActiveSequences / 10.0, 7, 3, 0);

    public async IAsyncEnumerable<ChoiceDelta> GenerateAsync(BackendCall call, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        lock (Requests) Requests.Add(call);
        var request = call.Request;
        var n = request.Choices;
        var choices = Enumerable.Range(0, n).Select(i => new Choice(request, i)).ToArray();
        Interlocked.Add(ref _active, n);
        Interlocked.Add(ref _started, n);
        var live = n;
        try
        {
            var replies = (ChoiceReplies ?? [Reply]).Select(Encoding.UTF8.GetBytes).ToArray();
            var max = request.Sampling.MaxTokens;
            for (var i = 0; i < max && live > 0; i++)
            {
                foreach (var c in choices)
                {
                    if (c.Done) continue;
                    if (call.Choices.IsStopped(c.Index))
                    {
                        c.Done = true;
                        live--;
                        Interlocked.Decrement(ref _active);
                        continue;
                    }
                    if (BeforeEachToken is { } wait) await wait(cancellationToken);
                    await Task.Yield();
                    cancellationToken.ThrowIfCancellationRequested();
                    var delta = c.Next(i, replies[c.Index % replies.Length], max, EndAfter);
                    if (delta.Finish is not null)
                    {
                        c.Done = true;
                        live--;
                        Interlocked.Decrement(ref _active);
                    }
                    yield return delta;
                }
            }
        }
        finally
        {
            Interlocked.Add(ref _active, -live);
        }
    }

    /// <summary>One choice: its random stream, its UTF-8 decoder and its stop-string matcher.</summary>
    private sealed class Choice(GenerationRequest request, int index)
    {
        private readonly Random _random = new(unchecked((int)((ulong)(request.Sampling.Seed ?? Random.Shared.Next()) + (ulong)index)));
        private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();
        private readonly StopStringMatcher? _stops = request.Sampling.StopStrings is { Count: > 0 } stops ? new StopStringMatcher(stops) : null;
        private readonly char[] _chars = new char[4];

        public int Index { get; } = index;

        public bool Done { get; set; }

        public ChoiceDelta Next(int position, byte[] reply, int max, int? endAfter)
        {
            if (endAfter is { } end && position == end)
                return new ChoiceDelta(Index, _stops?.Flush() ?? "", FinishReason.Stop);
            var id = request.Sampling.Temperature == 0 ? reply[position % reply.Length] : (byte)"abcdefgh "[_random.Next(9)];
            var piece = new string(_chars, 0, _decoder.GetChars([(byte)id], 0, 1, _chars, 0));
            TokenLogprob[]? top = request.TopLogprobs is { } k
                ? Enumerable.Range(0, k).Select(j => new TokenLogprob((id + j) % 256, -0.5f - j, ((char)((id + j) % 128)).ToString())).ToArray()
                : null;
            GeneratedToken[]? tokens = request.TopLogprobs is null ? null : [new GeneratedToken(id, piece, -0.5f, top)];
            var text = _stops is null ? piece : _stops.Push(piece);
            if (_stops is { Stopped: true }) return new ChoiceDelta(Index, text, FinishReason.Stop, tokens, 1) { StopStringMatched = true };
            if (position == max - 1) return new ChoiceDelta(Index, text + (_stops?.Flush() ?? ""), FinishReason.Length, tokens, 1);
            return new ChoiceDelta(Index, text, null, tokens, 1);
        }
    }
}
