using System.Text.Json;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// The guard model as a stage of the output guard: each choice's answer is put to the guard model
/// (in its response mode: the user's last message and the answer so far) and what has not passed a
/// check is held back. A whole response is checked once, before anything is returned; a stream every
/// <see cref="OutputModerationOptions.CheckEveryTokens"/> generated tokens and at the end, so the
/// client never receives text a check has not covered. A blocked choice ends with
/// <c>content_filter</c> and none of its held text. The checks are bounded like the input stage's
/// (timeout and fallback, <c>MaxPromptChars</c>) and counted with <c>stage="output"</c>; the
/// verdicts go to the audit record (<see cref="AuditJson"/>), never to the caller.
/// </summary>
public sealed class OutputModeration(OutputModerationOptions options, GuardModelStage stage)
{
    public const string Stage = "output";

    public OutputModerationOptions Options => options;

    /// <summary>The moderation of one choice of <paramref name="request"/>.</summary>
    public ChoiceModeration Begin(GenerationRequest request, string? tenant) =>
        new(this, UserText(request), request.Stream ? options.CheckEveryTokens : int.MaxValue, tenant);

    internal async Task<GuardModelCheck> CheckAsync(string user, string answer, string? tenant, CancellationToken cancellationToken) =>
        await stage.CheckAsync(Stage, user, answer, tenant, GuardDecision.Allow, cancellationToken).ConfigureAwait(false)
        ?? throw new InvalidOperationException("the output stage checks every answer");

    /// <summary>
    /// What the answer replies to: the last user message (the guard formats judge one exchange), else
    /// the text prompt; a prompt of token ids gives none.
    /// </summary>
    public static string UserText(GenerationRequest request)
    {
        if (request.Messages is { } messages)
            for (var i = messages.Count - 1; i >= 0; i--)
                if (messages[i].Role == "user") return messages[i].Content;
        return request.Prompt?.Text ?? "";
    }

    /// <summary>
    /// The audit record's <c>output</c> object for a request's choices: the most severe decision, the
    /// number of checks, and the check that decided (outcome, safety, categories, decision, ms).
    /// Null when no choice was checked.
    /// </summary>
    public static string? AuditJson(IEnumerable<ChoiceModeration> choices)
    {
        var checks = 0;
        GuardModelCheck? deciding = null;
        foreach (var choice in choices)
        {
            checks += choice.Checks;
            if (choice.Deciding is { } d && (deciding is null || d.Decision > deciding.Decision)) deciding = d;
        }
        return deciding is null ? null : JsonSerializer.Serialize(new { decision = deciding.Decision.Name(), checks, model = deciding.ToAudit() });
    }
}
