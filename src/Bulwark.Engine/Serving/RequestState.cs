using System.Threading.Channels;
using Bulwark.Engine.KvCache;
using Bulwark.Engine.Randomness;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Serving.Scheduling;

namespace Bulwark.Engine.Serving;

/// <summary>A request inside the engine: its event channel, its choices and timing. Touched only by the step loop, except <see cref="Events"/>' reader.</summary>
internal sealed class RequestState
{
    public RequestState(EngineRequest request, long arrival, BlockHash cacheRoot)
    {
        Request = request;
        ArrivalTimestamp = arrival;
        CacheRoot = cacheRoot;
        Prompt = request.PromptTokens.ToArray();
    }

    public EngineRequest Request { get; }

    public SamplingParams Sampling => Request.Sampling;

    public int[] Prompt { get; }

    public BlockHash CacheRoot { get; }

    public long ArrivalTimestamp { get; }

    public long? FirstScheduledTimestamp { get; set; }

    /// <summary>Steps the engine had completed when the step loop took this request in (see <see cref="TokenEvent.ArrivalStep"/>).</summary>
    public long ArrivalStep { get; set; }

    public int CachedPromptTokens { get; set; } = -1;

    public Channel<TokenEvent> Events { get; } = Channel.CreateUnbounded<TokenEvent>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    public List<Choice> Choices { get; } = new();

    public int Unfinished { get; set; }

    /// <summary>Choices the reader ended early (<see cref="ChoiceControl"/>); a fork listed here is never created.</summary>
    public HashSet<int> StoppedEarly { get; } = [];

    public bool Done { get; set; }

    /// <summary>Set for an embedding input: its pooled vector as the steps compute it (it has one choice and samples nothing).</summary>
    public Embeddings.PooledState? Embedding { get; init; }
}

/// <summary>One of a request's n choices: its sequence, its random stream and its text state.</summary>
internal sealed class Choice
{
    public Choice(RequestState request, int index, Sequence sequence)
    {
        Request = request;
        Index = index;
        Sequence = sequence;
        sequence.Owner = this;
        var p = request.Sampling;
        Random = new SplitMixRandom(p.Seed is { } seed
            ? SplitMixRandom.DeriveSeed(seed, index)
            : (ulong)System.Random.Shared.NextInt64());
        Detokenizer = request.Request.Detokenizer?.Invoke();
        if (p.StopStrings is { Count: > 0 } stops)
            StopMatcher = new StopStringMatcher(stops);
    }

    public RequestState Request { get; }

    public int Index { get; }

    public Sequence Sequence { get; }

    public SplitMixRandom Random;

    public IIncrementalDetokenizer? Detokenizer { get; }

    public StopStringMatcher? StopMatcher { get; }

    /// <summary>Set on choice 0 of an n &gt; 1 request until its prompt is computed and the other choices fork from it.</summary>
    public bool ForkPending { get; set; }

    /// <summary>The choice has ended: it emitted its last event, or the reader stopped it.</summary>
    public bool Finished { get; set; }
}
