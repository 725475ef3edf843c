using System.Runtime.CompilerServices;
using Bulwark.Engine.Serving;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Tests.Guardrails.GuardModels;

/// <summary>
/// A guard model double for output moderation: it reads the answer it is asked about out of the
/// Qwen3Guard response-mode prompt (plain text, as a non-embedded backend receives it), records it
/// (<see cref="Asked"/>), waits for <see cref="Gate"/> when set, records its verdict (<see cref="Judged"/>)
/// and answers in the format. A query-mode prompt (the input stage) is answered safe and not recorded.
/// </summary>
internal sealed class JudgingGuard(Func<string, bool> unsafeWhen) : IGenerationBackend
{
    private readonly List<string> _asked = [];
    private readonly List<(string Answer, bool Unsafe)> _judged = [];

    public ModelCard Model { get; } = new("guard", 16384, 257, new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    /// <summary>Awaited before answering (tests hold a check here, or let it time out).</summary>
    public Func<CancellationToken, Task>? Gate { get; set; }

    /// <summary>Every answer asked about, in order (each recorded before the check's verdict exists).</summary>
    public IReadOnlyList<string> Asked
    {
        get
        {
            lock (_asked) return [.. _asked];
        }
    }

    /// <summary>Every answer judged, with its verdict, recorded before the verdict is sent.</summary>
    public IReadOnlyList<(string Answer, bool Unsafe)> Judged
    {
        get
        {
            lock (_judged) return [.. _judged];
        }
    }

    public BackendStatistics Statistics => new(0, 0, 0, 0, 0, 0);

    public PreparedPrompt Prepare(GenerationRequest request) => new(request.Prompt!.Text!.Length / 4 + 1, false);

    /// <summary>The answer a response-mode prompt asks about; null for a query-mode prompt.</summary>
    public static string? AnswerIn(string prompt)
    {
        const string open = "\n\nASSISTANT: ", close = "\n\n<END CONVERSATION>";
        var start = prompt.IndexOf(open, StringComparison.Ordinal);
        if (start < 0) return null;
        start += open.Length;
        return prompt[start..prompt.LastIndexOf(close, StringComparison.Ordinal)];
    }

    public async IAsyncEnumerable<ChoiceDelta> GenerateAsync(BackendCall call, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        if (AnswerIn(call.Request.Prompt!.Text!) is not { } answer)
        {
            yield return new ChoiceDelta(0, "Safety: Safe\nCategories: None", FinishReason.Stop, null, 6);
            yield break;
        }
        lock (_asked) _asked.Add(answer);
        if (Gate is { } gate) await gate(cancellationToken);
        var blocked = unsafeWhen(answer);
        lock (_judged) _judged.Add((answer, blocked));
        var verdict = blocked ? "Safety: Unsafe\nCategories: Violent\nRefusal: No" : "Safety: Safe\nCategories: None\nRefusal: No";
        yield return new ChoiceDelta(0, verdict, FinishReason.Stop, null, 8);
    }
}
