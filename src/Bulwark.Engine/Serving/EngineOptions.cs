using Bulwark.Engine.KvCache;
using Bulwark.Engine.Serving.Scheduling;

namespace Bulwark.Engine.Serving;

public sealed record EngineOptions
{
    /// <summary>Memory for the KV block pool (<c>--kv-cache-memory</c>); ignored when <see cref="KvCacheBlocks"/> is set.</summary>
    public long KvCacheMemoryBytes { get; init; } = 512L << 20;

    /// <summary>Exact number of KV blocks, overriding the memory budget (tests and benchmarks).</summary>
    public int? KvCacheBlocks { get; init; }

    /// <summary>How the KV cache stores keys and values; F16 fits twice the tokens in the same memory.</summary>
    public KvCacheType KvCacheType { get; init; } = KvCacheType.F32;

    /// <summary>Token slots per KV block.</summary>
    public int BlockSize { get; init; } = 16;

    public bool PrefixCaching { get; init; } = true;

    public SchedulerOptions Scheduler { get; init; } = new();

    /// <summary>End-of-sequence token ids of the model; a choice stops on them unless IgnoreEos.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>Speculative decoding for requests that do not choose (<see cref="EngineRequest.Speculative"/> null); null: off.</summary>
    public Speculation.SpeculativeConfig? Speculative { get; init; }

    /// <summary>
    /// A draft model for <see cref="Speculation.SpeculativeMethod.DraftModel"/> speculation: an executor of a smaller model
    /// with the same vocabulary, used by this engine only (the engine allocates its KV cache); null: requests
    /// cannot ask for it. The engine does not dispose it.
    /// </summary>
    public DraftModelOptions? DraftModel { get; init; }

    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>The draft model of an engine and the memory its KV cache may take.</summary>
public sealed record DraftModelOptions(Execution.IModelExecutor Executor)
{
    /// <summary>Memory for the draft model's KV blocks; ignored when <see cref="KvCacheBlocks"/> is set.</summary>
    public long KvCacheMemoryBytes { get; init; } = 128L << 20;

    /// <summary>Exact number of draft KV blocks (tests and benchmarks).</summary>
    public int? KvCacheBlocks { get; init; }
}
