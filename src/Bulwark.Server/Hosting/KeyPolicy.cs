using Bulwark.Server.Api;
using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Hosting;

/// <summary>Stage 3 (policy) over API keys: the key's model list, then its quotas through <see cref="QuotaGate"/>.</summary>
public sealed class KeyPolicy(QuotaGate quotas) : IRequestPolicy
{
    public async ValueTask<IPolicyGrant?> AdmitAsync(HttpContext context, string model, long reservedTokens)
    {
        var caller = context.GetCaller() ?? throw new InvalidOperationException("the policy stage ran without an authenticated caller");
        var usage = context.GetRequestUsage();
        usage.Model = model;
        if (!caller.CanUseModel(model))
        {
            usage.RejectionReason = "model_not_allowed";
            throw new ApiException(StatusCodes.Status403Forbidden, $"This key may not use the model '{model}'; ask an administrator to add it to the key's models.",
                "permission_error", "model", "model_not_allowed");
        }
        var lease = await quotas.AdmitRequestAsync(context, caller, context.RequestAborted);
        await lease.ReserveTokensAsync(reservedTokens, context.RequestAborted);
        return new Grant(lease, usage);
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
