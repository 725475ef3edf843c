using System.Diagnostics;
using System.Text.Json;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Spine;

/// <summary>The route's stage 4 for <c>/v1/embeddings</c>: its body validated against the model and what it can embed.</summary>
public delegate EmbeddingsRequest EmbeddingsContract(JsonElement body, ModelCard model, EmbeddingSupport support);

public sealed partial class GenerationSpine
{
    /// <summary>
    /// The spine for <c>/v1/embeddings</c>, the same stages as a generation where they apply: 3 policy (the model the
    /// key may use, requests/min, concurrency), 4 contract, 6 tokens and their limits, 6b the token quota (the inputs'
    /// tokens, metered like prompt tokens), 7 admission (one slot per request, in priority order, within its
    /// deadline), 8 the backend, 10 usage for the audit record and the metrics. Stage 5 (the input guard) does not
    /// apply: the texts are never run as instructions, and sanitizing them would change the vectors. Stage 9 has no
    /// text to guard.
    /// </summary>
    /// <param name="maxTotalTokens">The request's inputs together may hold at most this many tokens.</param>
    public async Task EmbedAsync(HttpContext context, JsonDocument body, Func<JsonElement, string?> modelOf, EmbeddingsContract contract,
        int maxTotalTokens, Func<EmbeddingsRequest, float[][], int, Task> respond)
    {
        var started = time.GetTimestamp();
        var aborted = context.RequestAborted;
        var caller = context.GetCaller();
        var usage = context.GetRequestUsage();
        using var parsed = body;
        var spans = new StageSpans();
        try
        {
            spans.Enter(BulwarkTracing.Policy);
            if (serviceLevel.Refusal(caller?.Priority ?? 0, usage) is { } refusal) throw refusal;
            var allowed = deadlines.For(context.Request);
            using var deadline = DeadlineFrom(started, allowed);
            using var model = AcquireNamed(context, caller, modelOf(body.RootElement), spans);
            var card = model.Backend.Model;
            var embedder = model.Backend as IEmbeddingBackend;
            var support = embedder?.Embeddings ?? EmbeddingSupport.None($"The model '{card.Id}' does not offer embeddings on this server.");
            if (support.Refusal is { } reason)
            {
                usage.RejectionReason = "model_not_embedding";
                throw ApiException.Invalid("model", reason, "model_not_embedding");
            }
            await using var quota = await AdmitAsync(context, caller);

            spans.Enter(BulwarkTracing.Contract);
            var request = contract(body.RootElement, card, support) with { Tenant = caller?.Tenant, Priority = caller?.Priority ?? 0 };
            body.Dispose();

            var promptSpan = spans.Enter(BulwarkTracing.Prompt);
            var prepared = embedder!.PrepareEmbeddings(request);
            promptSpan?.SetTag(BulwarkTracing.Attributes.InputTokens, prepared.TokenCount);
            if (prepared.TokenCount > maxTotalTokens)
                throw ApiException.Invalid("input", $"input must hold at most {maxTotalTokens} tokens in all; got {prepared.TokenCount}. Split it over several requests.", "request_too_large");

            EmbeddingResult? result = null;
            try
            {
                spans.Enter(BulwarkTracing.TokenQuota);
                if (quota is not null) await quota.ReserveTokensAsync(prepared.TokenCount, aborted);

                var queued = spans.Enter(BulwarkTracing.Queue);
                var entered = time.GetTimestamp();
                using var slot = await EnterAsync(request.Priority, allowed, deadline.Token, aborted, usage);
                queued?.SetTag(BulwarkTracing.Attributes.QueueWait, time.GetElapsedTime(entered).TotalSeconds);
                spans.Done();

                using var cancel = CancellationTokenSource.CreateLinkedTokenSource(aborted, drain.HardStop, deadline.Token);
                try
                {
                    result = await embedder.EmbedAsync(request, prepared, cancel.Token);
                }
                catch (OperationCanceledException) when (!aborted.IsCancellationRequested && (drain.HardStop.IsCancellationRequested || deadline.IsCancellationRequested))
                {
                    if (drain.HardStop.IsCancellationRequested)
                        throw GenerationRun.ShuttingDown();
                    usage.RejectionReason = "deadline_exceeded";
                    metrics.DeadlineExceeded.Add(1, new KeyValuePair<string, object?>("stage", "generation"));
                    throw new ApiException(StatusCodes.Status504GatewayTimeout,
                        $"The request's deadline ({allowed.TotalSeconds:0.###} s) passed before its embeddings were computed. Send fewer inputs or allow more time ({RequestDeadline.Header}).",
                        "server_error", null, "deadline_exceeded");
                }
                var tokens = result.PromptTokens ?? prepared.TokenCount;
                var labels = new TagList { { "model", card.Id } };
                if (card.Pool is { } pool) labels.Add("upstream", pool);
                metrics.PromptTokens.Add(tokens, labels);
                await respond(request, result.Vectors, tokens);
            }
            finally
            {
                // 10 Meter: the inputs' tokens once their vectors exist (prompt tokens; embeddings generate none), as the
                // upstream counted them when it said, and which upstream endpoint answered.
                var charged = result is null ? 0 : result.PromptTokens ?? prepared.TokenCount;
                usage.PromptTokens = charged;
                usage.Upstream = result?.Endpoint;
                usage.CompletionTokens = 0;
                if (quota is not null) await quota.SettleAsync(charged);
            }
        }
        catch (Exception e)
        {
            spans.Fail(e, usage);
            throw;
        }
    }
}
