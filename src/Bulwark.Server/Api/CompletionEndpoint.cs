using System.Text.Json;
using Bulwark.Server.Admission;
using Bulwark.Server.Backends;
using Bulwark.Server.Hosting;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// <c>POST /v1/chat/completions</c> and <c>POST /v1/completions</c>: contract → admission →
/// backend → response, streamed as Server-Sent Events or answered whole.
/// </summary>
public sealed class CompletionEndpoint(
    ServedModels models, ApiLimits limits, IRequestPolicy policy, AdmissionGate admission, IOutputGuard guard,
    ShutdownDrain drain, ServerMetrics metrics, TimeProvider time)
{
    public async Task HandleAsync(HttpContext context, ResponseKind kind)
    {
        var started = time.GetTimestamp();
        CompletionJob job;
        ModelLease model;
        using (var body = await JsonBody.ReadAsync(context, limits))
        {
            // The lease keeps this model in memory until the response is written, even if it is replaced or unloaded meanwhile.
            (model, job) = models.AcquireFor(ModelField.Name(body.RootElement, limits), backend => kind == ResponseKind.Chat
                ? ChatCompletionParser.Parse(body.RootElement, backend, limits)
                : TextCompletionParser.Parse(body.RootElement, backend, limits));
        }
        using var _ = model;
        await using var grant = await policy.AdmitAsync(context, job.Model, job.ReservedTokens);
        if (grant is null) return; // refused; the policy wrote the answer
        var caller = RequestCaller.Of(context);
        using var lease = await admission.EnterAsync(caller.Priority, context.RequestAborted);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, drain.HardStop);
        var run = new CompletionRun(job, model.Backend, caller, metrics, time, started, guard);
        var id = (kind == ResponseKind.Chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        var writer = new CompletionResponseWriter(job, id, time.GetUtcNow().ToUnixTimeSeconds());
        try
        {
            if (job.Stream) await StreamAsync(context, job, run, writer, cancel.Token);
            else await RespondAsync(context, job, run, writer, cancel.Token);
        }
        finally
        {
            // Whatever happened, the tokens computed are the ones charged.
            await grant.SettleAsync(run.PromptTokens, run.CompletionTokens);
        }
    }

    private async Task RespondAsync(HttpContext context, CompletionJob job, CompletionRun run, CompletionResponseWriter writer, CancellationToken cancellationToken)
    {
        var choices = new CompletionResponseWriter.Choice[job.Choices];
        for (var i = 0; i < choices.Length; i++) choices[i] = new();
        try
        {
            await foreach (var delta in run.RunAsync(cancellationToken))
            {
                var c = choices[delta.Index];
                c.Text.Append(delta.Text);
                if (delta.Tokens is not null) c.Tokens.AddRange(delta.Tokens);
                if (delta.Finish != FinishReason.None) c.Finish = delta.Finish;
                if (delta.Format is not null) c.Format = delta.Format;
            }
        }
        catch (OperationCanceledException) when (drain.HardStop.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
        {
            throw ShuttingDown();
        }
        if (drain.HardStop.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested) throw ShuttingDown();
        context.RequestAborted.ThrowIfCancellationRequested();
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter);
        writer.WriteResponse(json, choices, run.PromptTokens, run.CompletionTokens);
    }

    private async Task StreamAsync(HttpContext context, CompletionJob job, CompletionRun run, CompletionResponseWriter writer, CancellationToken cancellationToken)
    {
        var events = new ServerEventStream(context);
        await events.StartAsync(context.RequestAborted);
        var started = new bool[job.Choices];
        var offsets = new int[job.Choices];
        try
        {
            await foreach (var delta in run.RunAsync(cancellationToken))
            {
                var first = !started[delta.Index];
                started[delta.Index] = true;
                var offset = offsets[delta.Index];
                offsets[delta.Index] += delta.Text.Length;
                await events.WriteAsync((writer, delta, first, offset), static (json, s) => s.writer.WriteChunk(json, s.delta, s.first, s.offset), context.RequestAborted);
            }
            if (drain.HardStop.IsCancellationRequested) throw new OperationCanceledException(drain.HardStop);
            if (job.IncludeUsage)
                await events.WriteAsync((writer, run), static (json, s) => s.writer.WriteUsageChunk(json, s.run.PromptTokens, s.run.CompletionTokens), context.RequestAborted);
        }
        catch (OperationCanceledException) when (drain.HardStop.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
        {
            // Headers are gone; the only way left to tell the client is an error event, as OpenAI does mid-stream.
            await events.WriteErrorAsync(ShuttingDown(), context.RequestAborted);
        }
        await events.WriteDoneAsync(context.RequestAborted);
    }

    private static ApiException ShuttingDown() =>
        new(StatusCodes.Status503ServiceUnavailable, "The server is shutting down and cancelled this request before it finished. Retry on another replica or later.",
            "server_error", null, "server_shutting_down", TimeSpan.FromSeconds(1));
}
