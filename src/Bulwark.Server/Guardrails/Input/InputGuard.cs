using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// Stage 5 of the spine, the input guard, on the request the contract stage has validated. It
/// sanitizes every text a model will see (message contents, prompts) and scans the text the client
/// controls as data — user and tool messages, prompts; system and developer messages are the
/// application's own instructions and assistant messages its past output, so they are sanitized but
/// not scanned. Token-id prompts are neither. The verdict is counted in metrics, kept on the
/// request's <see cref="RequestUsage"/> for the audit record (rule ids and score, never text) and,
/// under the block policy, a blocked request is refused with 400 <c>prompt_injection</c>.
/// </summary>
public sealed class InputGuard(InputGuardOptions options, ServerMetrics metrics, GuardModelStage? guardModel = null)
{
    private readonly InputSanitizer _sanitizer = new(options.MaxSpaceRun, options.MaxNewlineRun);
    private readonly InjectionScanner _scanner = InjectionScanner.Default;
    private readonly GuardMetrics _metrics = new(metrics.Meter);

    /// <summary>The request with its texts sanitized (the same instance when nothing changed); the fast detector only.</summary>
    /// <exception cref="ApiException">400 <c>prompt_injection</c> under the block policy.</exception>
    public GenerationRequest Apply(GenerationRequest request, Caller? caller, RequestUsage usage) =>
        Screen(request, caller) is { } screened ? Decide(screened, null, usage) : request;

    /// <summary>
    /// <see cref="Apply"/>, then the guard model stage when one is configured and its mode selects
    /// the request: the decision is the more severe of the two, capped by the policy (under
    /// <c>flag</c> nothing is refused). The guard model's verdict goes to metrics and the audit
    /// record only; a request it blocks is refused with 400 <c>unsafe_content</c>, naming nothing of it.
    /// </summary>
    public async Task<GenerationRequest> ApplyAsync(GenerationRequest request, Caller? caller, RequestUsage usage, CancellationToken cancellationToken)
    {
        if (Screen(request, caller) is not { } screened) return request;
        GuardModelCheck? check = null;
        // A request the scan already blocks is refused whatever the guard model says: no check to pay for.
        if (guardModel is not null && screened.Scanned.Count > 0 && screened.Verdict.Decision != GuardDecision.Block)
            check = await guardModel.CheckAsync("input", string.Join("\n\n", screened.Scanned), null, caller?.Tenant ?? request.Tenant, screened.Verdict.Decision, cancellationToken).ConfigureAwait(false);
        return Decide(screened, check, usage);
    }

    private sealed record Screened(GenerationRequest Request, List<string> Scanned, InjectionVerdict Verdict, GuardPolicy Policy);

    /// <summary>Sanitizes and scans; null under the <c>off</c> policy.</summary>
    private Screened? Screen(GenerationRequest request, Caller? caller)
    {
        var policy = options.PolicyFor(caller?.Tenant ?? request.Tenant, caller?.Guard);
        if (policy == GuardPolicy.Off) return null;

        var scanned = new List<string>();
        var sanitized = request;
        if (request.Messages is { } messages)
        {
            ChatMessage[]? clean = null;
            for (var i = 0; i < messages.Count; i++)
            {
                var m = messages[i];
                var text = _sanitizer.Sanitize(m.Content);
                if (m.Role is not ("system" or "developer" or "assistant")) scanned.Add(text);
                if (ReferenceEquals(text, m.Content)) continue;
                clean ??= [.. messages];
                clean[i] = m with { Content = text };
            }
            if (clean is not null) sanitized = request with { Messages = clean };
        }
        if (request.Prompt?.Text is { } prompt)
        {
            var text = _sanitizer.Sanitize(prompt);
            scanned.Add(text);
            if (!ReferenceEquals(text, prompt)) sanitized = request with { Prompt = PromptInput.FromText(text) };
        }
        return new Screened(sanitized, scanned, Scan(scanned, policy), policy);
    }

    private GenerationRequest Decide(Screened screened, GuardModelCheck? check, RequestUsage usage)
    {
        var verdict = screened.Verdict;
        var byModel = check is null ? GuardDecision.Allow : screened.Policy == GuardPolicy.Flag && check.Decision == GuardDecision.Block ? GuardDecision.Flag : check.Decision;
        var decided = byModel > verdict.Decision ? verdict with { Decision = byModel } : verdict;
        usage.GuardVerdict = check is null ? decided.ToAuditJson() : decided.ToAuditJson(check.ToAudit());
        _metrics.Record(decided, screened.Policy);
        if (decided.Decision != GuardDecision.Block) return screened.Request;
        if (verdict.Decision != GuardDecision.Block)
        {
            usage.RejectionReason = "unsafe_content";
            throw new ApiException(StatusCodes.Status400BadRequest,
                "The request was refused by the input guard's safety classifier. If this is a false positive, ask the operator to review this tenant's guard policy.",
                "invalid_request_error", null, "unsafe_content");
        }
        usage.RejectionReason = "prompt_injection";
        throw new ApiException(StatusCodes.Status400BadRequest,
            $"The request was refused by the input guard as a likely prompt-injection attempt (rules: {(verdict.RuleIds.Count == 0 ? "none" : string.Join(", ", verdict.RuleIds))}; score {verdict.Score:F3}). " +
            "If this is a false positive, ask the operator to set this tenant's guard policy to flag.",
            "invalid_request_error", null, "prompt_injection");
    }

    /// <summary>The most severe verdict over the texts: highest decision, highest score, every rule hit.</summary>
    private InjectionVerdict Scan(List<string> texts, GuardPolicy policy)
    {
        if (texts.Count == 0) return new InjectionVerdict([], 0, GuardDecision.Allow);
        var rules = new SortedSet<string>(StringComparer.Ordinal);
        double score = 0;
        var decision = GuardDecision.Allow;
        foreach (var text in texts)
        {
            var v = _scanner.Scan(text, policy);
            rules.UnionWith(v.RuleIds);
            score = Math.Max(score, v.Score);
            if (v.Decision > decision) decision = v.Decision;
        }
        return new InjectionVerdict(rules.ToArray(), score, decision);
    }
}
