using System.Diagnostics;
using System.Text.Json;
using Bulwark.Server.Admission;
using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Guardrails.Input;
using Bulwark.Server.Guardrails.Output;
using Bulwark.Server.Observability;
using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Spine;

/// <summary>Stage 4 of a route: its wire format (OpenAI chat, OpenAI completions, TGI) validated into the request vocabulary.</summary>
/// <exception cref="ApiException">A field is missing, of the wrong type or out of range; the message names it.</exception>
public delegate GenerationRequest RouteContract(JsonElement body, ModelCard model);

/// <summary>
/// THE way of one generation request, every stage after identity in the documented order, cheapest
/// refusals first (docs/architecture.md, "The spine"). Stages 1–2 (edge, identity) and the HTTP
/// part of stage 10 run before it as middleware (<c>Hosting/RequestPipeline</c>); a route only
/// parses its wire format (<see cref="RouteContract"/>) and writes its response from the
/// <see cref="GenerationRun"/>. A request its key may not make (model, rate, concurrency) is
/// refused before it is validated, scanned, templated or tokenized; the token quota is checked once
/// the prompt is counted.
/// </summary>
public sealed partial class GenerationSpine(
    ServedModels models, InputGuard inputGuard, AdmissionGate admission, IOutputGuard outputGuard, ServerMetrics metrics,
    ShutdownDrain drain, ServiceLevel serviceLevel, TimeProvider time, int maxTokensLimit, RequestDeadline deadlines, QuotaGate? quotas = null,
    OutputModeration? outputModeration = null)
{
    /// <param name="body">The request body, parsed once by the route; the spine disposes it as soon as the contract has read it.</param>
    /// <param name="modelOf">The model the body names (null: the default model).</param>
    /// <param name="contract">Stage 4: the route's validation of its wire format.</param>
    /// <param name="respond">Writes the route's response from the run's deltas.</param>
    public async Task RunAsync(HttpContext context, JsonDocument body, Func<JsonElement, string?> modelOf, RouteContract contract, Func<GenerationRun, Task> respond)
    {
        var started = time.GetTimestamp();
        var aborted = context.RequestAborted;
        var caller = context.GetCaller();
        var usage = context.GetRequestUsage();
        using var parsed = body; // a second Dispose, after the contract, is a no-op
        // One span per stage, siblings under the HTTP server span; a refusal marks the stage that refused (docs/tracing.md).
        var spans = new StageSpans();
        try
        {
            // 3a Service level: an isolated replica, or a degradation level refusing this key's priority, refuses before anything else.
            spans.Enter(BulwarkTracing.Policy);
            if (serviceLevel.Refusal(caller?.Priority ?? 0, usage) is { } refusal) throw refusal;
            // The request's deadline runs from its arrival: the wait for a slot counts, and generation ends when it passes.
            var allowed = deadlines.For(context.Request);
            using var deadline = DeadlineFrom(started, allowed);

            // 3 Policy that needs no tokens: the model the request names, which the key must be allowed to use
            // (404 either way, so a key cannot learn which models exist), then requests/min and concurrent requests.
            // The model is leased until the response is written, even if it is replaced or unloaded meanwhile.
            using var model = AcquireNamed(context, caller, modelOf(body.RootElement), spans);
            var backend = model.Backend;
            await using var quota = await AdmitAsync(context, caller);

            // 4 Contract: every field validated into the one request vocabulary.
            spans.Enter(BulwarkTracing.Contract);
            var request = contract(body.RootElement, backend.Model) with { Tenant = caller?.Tenant, Priority = caller?.Priority ?? 0 };
            body.Dispose();

            // 5 Input guard: texts sanitized, the client's texts scanned (off | flag | block), then the guard model if one is configured.
            spans.Enter(BulwarkTracing.InputGuard);
            request = await inputGuard.ApplyAsync(request, caller, usage, aborted);
            spans.Current?.SetTag(BulwarkTracing.Attributes.GuardDecision, usage.GuardVerdict);

            // 6 Prompt: chat template and tokens (or the backend's estimate), length limits, max_tokens.
            var promptSpan = spans.Enter(BulwarkTracing.Prompt);
            var prompt = backend.Prepare(request);
            promptSpan?.SetTag(BulwarkTracing.Attributes.InputTokens, prompt.TokenCount);
            promptSpan?.SetTag(BulwarkTracing.Attributes.PromptExact, prompt.IsExact);
            request = request with { Sampling = request.Sampling with { MaxTokens = Degraded(context, MaxTokens(request, prompt, backend.Model)) } };

            BackendCall? call = null;
            GenerationRun? run = null;
            Activity? generation = null;
            string? failed = null;
            try
            {
                // 6b Token quota: prompt + n × max_tokens against tokens/min and tokens/day.
                spans.Enter(BulwarkTracing.TokenQuota);
                if (quota is not null) await quota.ReserveTokensAsync(prompt.TokenCount + (long)request.Choices * request.Sampling.MaxTokens, aborted);

                // 7 Admission: a slot, or a wait in priority order, or 429/503 with Retry-After; 504 when the deadline passes first.
                var queued = spans.Enter(BulwarkTracing.Queue);
                var entered = time.GetTimestamp();
                using var slot = await EnterAsync(request.Priority, allowed, deadline.Token, aborted, usage);
                queued?.SetTag(BulwarkTracing.Attributes.QueueWait, time.GetElapsedTime(entered).TotalSeconds);
                spans.Done();

                // 8 Backend, 9 Output guard: the run's deltas, which the route writes.
                using var cancel = CancellationTokenSource.CreateLinkedTokenSource(aborted, drain.HardStop, deadline.Token);
                generation = GenerationSpan.Start(request, backend.Model.Id);
                call = new BackendCall(request, prompt) { Span = generation };
                run = new GenerationRun(call, backend, outputGuard, caller, metrics, time, started, cancel.Token, drain.HardStop, aborted, deadline.Token,
                    outputModeration, usage);
                await respond(run);
            }
            catch (Exception e) when (generation is not null)
            {
                failed = BulwarkTracing.ReasonOf(e, usage);
                throw;
            }
            finally
            {
                // 10 Meter: whatever happened, the tokens computed are the ones charged and audited; a request
                // refused before the backend (queue full, shutting down) computed none.
                if (run is not null)
                {
                    usage.PromptTokens = run.PromptTokens;
                    usage.CompletionTokens = run.CompletionTokens;
                    usage.Upstream = call!.Endpoint;
                }
                GenerationSpan.End(generation, run, failed);
                if (quota is not null) await quota.SettleAsync(run is null ? 0 : run.PromptTokens + run.CompletionTokens);
            }
        }
        catch (Exception e)
        {
            spans.Fail(e, usage);
            throw;
        }
    }

    /// <summary>
    /// Stage 3 for a request that uses a model without generating (<c>/tokenize</c>, <c>/detokenize</c>):
    /// the model the key may use (404 otherwise, as for generation), then requests/min and concurrency.
    /// No tokens are charged: nothing is generated. Dispose the quota lease (it frees the slot), then the model lease.
    /// </summary>
    public async ValueTask<(ModelLease Model, QuotaLease? Quota)> AdmitWithoutGenerationAsync(HttpContext context, string? modelName)
    {
        var caller = context.GetCaller();
        if (serviceLevel.Refusal(caller?.Priority ?? 0, context.GetRequestUsage()) is { } refusal) throw refusal;
        var model = Acquire(context, caller, modelName);
        try
        {
            context.GetRequestUsage().Model = model.Backend.Model.Id;
            return (model, await AdmitAsync(context, caller));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Cancelled when the request's deadline, counted from its arrival, passes.</summary>
    private CancellationTokenSource DeadlineFrom(long started, TimeSpan allowed) =>
        new(allowed - time.GetElapsedTime(started) is { } left && left > TimeSpan.Zero ? left : TimeSpan.Zero, time);

    /// <summary>Leases the model the request names, and records it on the usage record and the policy span.</summary>
    private ModelLease AcquireNamed(HttpContext context, Caller? caller, string? name, StageSpans spans)
    {
        var model = Acquire(context, caller, name);
        context.GetRequestUsage().Model = model.Backend.Model.Id;
        spans.Current?.SetTag(BulwarkTracing.Attributes.RequestModel, model.Backend.Model.Id);
        return model;
    }

    /// <summary>Leases the model; one the caller may not use is not found, and is audited as refused for that reason.</summary>
    private ModelLease Acquire(HttpContext context, Caller? caller, string? name)
    {
        Func<string, bool>? visible = caller is null ? null : caller.CanUseModel;
        try
        {
            return models.Acquire(name, visible);
        }
        catch (ApiException) when (visible is not null && (name is null ? models.List().FirstOrDefault()?.Id : name) is { } id && models.Find(id) is not null && !visible(id))
        {
            context.GetRequestUsage().RejectionReason = "model_not_allowed";
            throw;
        }
    }

    /// <summary>Requests/min and concurrency; null when the server runs without the security front.</summary>
    private async ValueTask<QuotaLease?> AdmitAsync(HttpContext context, Caller? caller)
    {
        if (caller is null)
        {
            if (quotas is null) return null;
            // A secured server never generates for nobody: a generation route listed in Bulwark:Security:PublicPaths still needs a key.
            context.GetRequestUsage().RejectionReason = "missing_credentials";
            throw new ApiException(StatusCodes.Status401Unauthorized, "Generation needs an API key, even on a route listed as public: send it as 'Authorization: Bearer <key>'.",
                "invalid_request_error", null, "invalid_api_key");
        }
        return quotas is null ? null : await quotas.AdmitRequestAsync(context, caller, context.RequestAborted);
    }

    /// <summary>Admission within the request's deadline: a deadline that passes in the queue answers 504 <c>deadline_exceeded</c>.</summary>
    private async ValueTask<Admission.AdmissionLease> EnterAsync(int priority, TimeSpan allowed, CancellationToken deadline, CancellationToken aborted, RequestUsage usage)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(aborted, deadline);
        try
        {
            return await admission.EnterAsync(priority, wait.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !aborted.IsCancellationRequested)
        {
            usage.RejectionReason = "deadline_exceeded";
            metrics.DeadlineExceeded.Add(1, new KeyValuePair<string, object?>("stage", "queue"));
            throw new ApiException(StatusCodes.Status504GatewayTimeout,
                $"The request's deadline ({allowed.TotalSeconds:0.###} s) passed while it waited for a free slot; nothing was generated. Retry later or allow more time ({RequestDeadline.Header}).",
                "server_error", null, "deadline_exceeded");
        }
    }

    /// <summary>The output length within the degradation level's cap; a lowered one is announced in <c>X-Bulwark-Degradation</c>.</summary>
    private int Degraded(HttpContext context, int maxTokens)
    {
        if (serviceLevel.MaxTokensCap is not { } cap || maxTokens <= cap) return maxTokens;
        context.Response.Headers["X-Bulwark-Degradation"] = $"{ServiceLevel.Name(serviceLevel.Level)}; max_tokens={cap}";
        return cap;
    }

    /// <summary>
    /// The output length: what the client asked for, or the route's default (capped by the server's
    /// limit), bounded by what the prompt leaves of the context. A count that is only an estimate, or a
    /// context length nobody told us, refuses nothing: the backend that knows judges the context itself.
    /// </summary>
    private int MaxTokens(GenerationRequest request, PreparedPrompt prompt, ModelCard model)
    {
        var room = model.ContextLength - prompt.TokenCount;
        var fallback = Math.Min(request.DefaultMaxTokens, maxTokensLimit);
        if (!prompt.IsExact || model.ContextLength == 0) return request.RequestedMaxTokens ?? (model.ContextLength > 0 && room >= 1 ? Math.Min(fallback, room) : fallback);
        if (room < 1)
            throw ApiException.Invalid(request.Messages is null ? "prompt" : "messages",
                $"This model's maximum context length is {model.ContextLength} tokens; the prompt has {prompt.TokenCount} tokens, which leaves no room for output.",
                "context_length_exceeded");
        if (request.RequestedMaxTokens is not { } wanted) return Math.Min(fallback, room);
        if (wanted > room)
        {
            var name = request.MaxTokensParam[(request.MaxTokensParam.LastIndexOf('.') + 1)..];
            throw ApiException.Invalid(request.MaxTokensParam,
                $"This model's maximum context length is {model.ContextLength} tokens. However, you requested {prompt.TokenCount + wanted} tokens ({prompt.TokenCount} in the prompt, {wanted} in the completion). Reduce the prompt or {name}.",
                "context_length_exceeded");
        }
        return wanted;
    }
}
