using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// Stage 3 of the spine (policy) as the endpoints see it. It runs once the request is parsed and
/// tokenized, because only then are the model and the token need (prompt + n × max_tokens) known:
/// the model ACL, requests/tokens per minute, concurrency and budgets. The server composes either
/// the key-based policy (<see cref="Hosting.KeyPolicy"/>) or, for tests that run without the security
/// front, <see cref="OpenPolicy"/>.
/// </summary>
public interface IRequestPolicy
{
    /// <summary>
    /// Admits the request and returns a grant to settle when it ends, or returns null after writing
    /// the refusal (429 with rate-limit headers) itself; throws <see cref="ApiException"/> for refusals
    /// in the API's own shape (403 model not allowed).
    /// </summary>
    ValueTask<IPolicyGrant?> AdmitAsync(HttpContext context, string model, long reservedTokens);
}

/// <summary>An admitted request's hold on its quota. Settling charges the real count; disposing without settling keeps the whole reservation charged.</summary>
public interface IPolicyGrant : IAsyncDisposable
{
    ValueTask SettleAsync(long promptTokens, long completionTokens);
}

/// <summary>No policy at all: only for tests that exercise the API without the security front.</summary>
public sealed class OpenPolicy : IRequestPolicy, IPolicyGrant
{
    public static readonly OpenPolicy Instance = new();

    public ValueTask<IPolicyGrant?> AdmitAsync(HttpContext context, string model, long reservedTokens) => ValueTask.FromResult<IPolicyGrant?>(this);

    public ValueTask SettleAsync(long promptTokens, long completionTokens) => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
