using System.Text.Json;
using Bulwark.Server.Requests;
using Bulwark.Server.Spine;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// <c>POST /v1/chat/completions</c> and <c>POST /v1/completions</c>: OpenAI's wire format around
/// the spine. The body is parsed once and validated by the route's parser (stage 4); the answer is
/// streamed as Server-Sent Events or written whole.
/// </summary>
public sealed class CompletionEndpoint(GenerationSpine spine, ApiLimits limits, TimeProvider time)
{
    public async Task HandleAsync(HttpContext context, ResponseKind kind)
    {
        var body = await JsonBody.ReadAsync(context, limits);
        await spine.RunAsync(context, body, root => ModelField.Name(root, limits),
            kind == ResponseKind.Chat
                ? (root, model) => ChatCompletionParser.Parse(root, model, limits)
                : (root, model) => TextCompletionParser.Parse(root, model, limits),
            run =>
            {
                var id = (kind == ResponseKind.Chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
                var writer = new CompletionResponseWriter(kind, run.Request, id, time.GetUtcNow().ToUnixTimeSeconds());
                return run.Request.Stream ? StreamAsync(context, run, writer) : RespondAsync(context, run, writer);
            });
    }

    private static async Task RespondAsync(HttpContext context, GenerationRun run, CompletionResponseWriter writer)
    {
        var choices = new CompletionResponseWriter.Choice[run.Request.Choices];
        for (var i = 0; i < choices.Length; i++) choices[i] = new();
        await foreach (var delta in run.GenerateAsync())
        {
            var c = choices[delta.Index];
            c.Text.Append(delta.Text);
            if (delta.Tokens is not null) c.Tokens.AddRange(delta.Tokens);
            if (delta.Finish is not null) c.Finish = delta.Finish;
            if (delta.Format is not null) c.Format = delta.Format;
            foreach (var piece in delta.ToolCalls ?? []) c.Add(piece);
            c.CalledTools |= delta.CalledTools;
        }
        context.RequestAborted.ThrowIfCancellationRequested();
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter);
        writer.WriteResponse(json, choices, run.PromptTokens, run.CompletionTokens);
    }

    private static async Task StreamAsync(HttpContext context, GenerationRun run, CompletionResponseWriter writer)
    {
        var events = new ServerEventStream(context);
        await events.StartAsync(context.RequestAborted);
        var started = new bool[run.Request.Choices];
        var offsets = new int[run.Request.Choices];
        try
        {
            await foreach (var delta in run.GenerateAsync())
            {
                var first = !started[delta.Index];
                started[delta.Index] = true;
                if (delta.ToolCalls is { } calls)
                {
                    await WriteToolCallsAsync(context, events, writer, delta, calls, first);
                    continue;
                }
                var offset = offsets[delta.Index];
                offsets[delta.Index] += delta.Text.Length;
                await events.WriteAsync((writer, delta, first, offset), static (json, s) => s.writer.WriteChunk(json, s.delta, s.first, s.offset), context.RequestAborted);
            }
            if (run.Request.IncludeUsage)
                await events.WriteAsync((writer, run), static (json, s) => s.writer.WriteUsageChunk(json, s.run.PromptTokens, s.run.CompletionTokens), context.RequestAborted);
        }
        catch (ApiException error) when (!context.RequestAborted.IsCancellationRequested)
        {
            // Headers are gone; the only way left to tell the client is an error event, as OpenAI does mid-stream.
            await events.WriteErrorAsync(error, context.RequestAborted);
        }
        await events.WriteDoneAsync(context.RequestAborted);
    }

    /// <summary>A delta with tool calls, as OpenAI streams it: its text (and logprobs) first, then one chunk per call piece, then the finish.</summary>
    private static async Task WriteToolCallsAsync(HttpContext context, ServerEventStream events, CompletionResponseWriter writer, ChoiceDelta delta,
        IReadOnlyList<ToolCallDelta> calls, bool first)
    {
        var ct = context.RequestAborted;
        var rest = delta with { ToolCalls = null };
        if (delta.Text.Length > 0 || delta.Tokens is { Count: > 0 })
        {
            var text = delta with { Finish = null, Format = null, ToolCalls = null, CalledTools = false };
            await events.WriteAsync((writer, text, first), static (json, s) => s.writer.WriteChunk(json, s.text, s.first, 0), ct);
            first = false;
            rest = rest with { Text = "", Tokens = null };
        }
        foreach (var piece in calls)
        {
            if (piece.Id is not null)
            {
                var opening = piece with { Arguments = "" };
                await events.WriteAsync((writer, delta.Index, opening, first), static (json, s) => s.writer.WriteToolCallChunk(json, s.Index, s.opening, s.first), ct);
                first = false;
            }
            if (piece.Arguments.Length == 0) continue;
            var fragment = piece with { Id = null, Name = null };
            await events.WriteAsync((writer, delta.Index, fragment, first), static (json, s) => s.writer.WriteToolCallChunk(json, s.Index, s.fragment, s.first), ct);
            first = false;
        }
        if (delta.Finish is not null)
            await events.WriteAsync((writer, rest, first), static (json, s) => s.writer.WriteChunk(json, s.rest, s.first, 0), ct);
    }
}
