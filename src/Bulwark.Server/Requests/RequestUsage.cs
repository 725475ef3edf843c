using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Requests;

/// <summary>
/// What later stages learn about a request and the audit record needs: the model, token counts,
/// a rejection reason, and (kept only for opted-in tenants) the prompt and completion text.
/// </summary>
public sealed class RequestUsage
{
    public string? Model { get; set; }
    public long? PromptTokens { get; set; }
    public long? CompletionTokens { get; set; }
    public string? RejectionReason { get; set; }

    /// <summary>
    /// A rejection reason's code: the part before ':' (<c>invalid_key:revoked</c> → <c>invalid_key</c>), what
    /// metric labels and error codes carry, so their values stay few whatever follows the colon.
    /// </summary>
    public static string ReasonCode(string reason) => reason.Split(':')[0];

    /// <summary>The upstream endpoint that served the request (scheme://host:port); null when the embedded engine did.</summary>
    public string? Upstream { get; set; }

    /// <summary>The input guard's verdict as compact JSON (rule ids and a score, never text); null when it did not scan.</summary>
    public string? GuardVerdict { get; set; }

    /// <summary>The guard model's verdict on the output as compact JSON (decision, checks, the deciding check; never text); null when the output stage is off.</summary>
    public string? OutputGuardVerdict { get; set; }

    /// <summary>The audit record's <c>guard</c> field: the input guard's verdict with the output's as <c>output</c> (either may be missing).</summary>
    public string? GuardAudit =>
        OutputGuardVerdict is not { } output ? GuardVerdict
        : GuardVerdict is not { } input ? "{\"output\":" + output + "}"
        : input[..^1] + ",\"output\":" + output + "}";

    /// <summary>Prompt and completion text; stored only when <c>Bulwark:Audit:ContentTenants</c> names the tenant.</summary>
    public string? Content { get; set; }
}

public static class RequestUsageExtensions
{
    /// <summary>The usage record of this request, created on first use.</summary>
    public static RequestUsage GetRequestUsage(this HttpContext context)
    {
        var usage = context.Features.Get<RequestUsage>();
        if (usage is null)
        {
            usage = new RequestUsage();
            context.Features.Set(usage);
        }
        return usage;
    }
}
