using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Text;
using Bulwark.Server.Api;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// Stage 9's secret redaction, applied to a run's deltas before they are written (streamed or
/// whole). One <see cref="StreamingRedactor"/> per choice holds back only what may still become
/// a secret; a choice's final delta flushes it. In <see cref="OutputGuardMode.Block"/> mode a
/// secret ends that choice at once: its last delta carries the text before the secret and
/// <see cref="FinishReason.ContentFilter"/>, which the response writer turns into a well-formed
/// final chunk with <c>finish_reason: "content_filter"</c> (the stream is never cut). When every
/// choice has ended, the run is abandoned, which cancels its sequences.
/// <para>Configuration <c>Bulwark:Guardrails:Output:Mode</c>: <c>off | redact | block</c> (default <c>redact</c>).</para>
/// </summary>
public sealed class OutputGuard
{
    public const string Section = "Bulwark:Guardrails:Output";

    private readonly Counter<long> _secrets;
    private readonly Counter<long> _blocked;

    public OutputGuard(IConfiguration configuration, ServerMetrics metrics)
        : this(ReadMode(configuration), metrics)
    {
    }

    internal OutputGuard(OutputGuardMode? mode, ServerMetrics metrics)
    {
        Mode = mode;
        _secrets = metrics.Meter.CreateCounter<long>("bulwark_guard_secrets", description: "Secrets found in generated text, by rule id and action (redact or block).");
        _blocked = metrics.Meter.CreateCounter<long>("bulwark_guard_output_blocked", description: "Choices ended with finish_reason content_filter by the output guard.");
    }

    /// <summary>Null when the output guard is off.</summary>
    public OutputGuardMode? Mode { get; }

    public static OutputGuardMode? ReadMode(IConfiguration configuration) => configuration[$"{Section}:Mode"]?.Trim().ToLowerInvariant() switch
    {
        null or "redact" => OutputGuardMode.Redact,
        "block" => OutputGuardMode.Block,
        "off" => null,
        var other => throw new FormatException($"{Section}:Mode must be one of off, redact, block; got '{other}'"),
    };

    public async IAsyncEnumerable<ChoiceDelta> ApplyAsync(IAsyncEnumerable<ChoiceDelta> deltas, int choices, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Mode is not { } mode)
        {
            await foreach (var delta in deltas.WithCancellation(cancellationToken)) yield return delta;
            yield break;
        }
        var redactors = new StreamingRedactor?[choices];
        var ended = new bool[choices];
        var open = choices;
        var text = new StringBuilder();
        await foreach (var delta in deltas.WithCancellation(cancellationToken))
        {
            if (ended[delta.Index]) continue; // a blocked choice still draining from the backend
            var redactor = redactors[delta.Index] ??= new StreamingRedactor(mode);
            text.Clear();
            redactor.Push(delta.Text, text);
            var finish = delta.Finish;
            if (redactor.IsBlocked) finish = FinishReason.ContentFilter;
            else if (finish != FinishReason.None) redactor.Flush(text);
            if (finish != FinishReason.None)
            {
                ended[delta.Index] = true;
                open--;
                Count(redactor, mode);
            }
            // Yielded even when all of it is held back: one event per token keeps clients' progress and
            // inter-token timing honest, and the held text follows in a later event.
            yield return delta with { Text = text.ToString(), Finish = finish, MatchedStopString = delta.MatchedStopString && finish != FinishReason.ContentFilter };
            if (open == 0) yield break;
        }
    }

    private void Count(StreamingRedactor redactor, OutputGuardMode mode)
    {
        foreach (var rule in redactor.Hits)
            _secrets.Add(1, new KeyValuePair<string, object?>("rule", rule), new("action", mode == OutputGuardMode.Block ? "block" : "redact"));
        if (redactor.IsBlocked) _blocked.Add(1);
    }
}
