using Bulwark.Server.Api;
using Bulwark.Server.Audit;
using Bulwark.Server.Quotas;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Hosting;

/// <summary>
/// Stage 3 (policy) over API keys: the key's model list, then its quotas through
/// <see cref="QuotaGate"/> (requests/min, tokens/min reserved up front, concurrency, daily budget).
/// Also fills the request's usage record, which the audit record and the metrics read.
/// </summary>
public sealed class KeyPolicy(QuotaGate quotas) : IRequestPolicy
{
    public async ValueTask<IPolicyGrant?> AdmitAsync(HttpContext context, string model, long reservedTokens)
    {
        // The identity stage answers 401 before any endpoint runs, so an endpoint always has a caller.
        var caller = context.GetCaller() ?? throw new InvalidOperationException("the policy stage ran without an authenticated caller");
        var usage = context.GetRequestUsage();
        usage.Model = model;
        if (!caller.CanUseModel(model))
        {
            usage.RejectionReason = "model_not_allowed";
            throw new ApiException(StatusCodes.Status403Forbidden, $"This key may not use the model '{model}'; ask an administrator to add it to the key's models.",
                "permission_error", "model", "model_not_allowed");
        }
        var lease = await quotas.AdmitAsync(context, caller, reservedTokens, context.RequestAborted);
        return lease is null ? null : new Grant(lease, usage);
    }

    private sealed class Grant(QuotaLease lease, RequestUsage usage) : IPolicyGrant
    {
        public ValueTask SettleAsync(long promptTokens, long completionTokens)
        {
            usage.PromptTokens = promptTokens;
            usage.CompletionTokens = completionTokens;
            return lease.SettleAsync(promptTokens + completionTokens);
        }

        public ValueTask DisposeAsync() => lease.DisposeAsync();
    }
}
