using System.Text.Json;
using System.Text;
using Bulwark.Server.Admission;
using Bulwark.Server.Backends;
using Bulwark.Server.Hosting;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// Text Generation Inference's <c>POST /generate</c> and <c>POST /generate_stream</c>, for teams
/// moving from TGI: <c>{"inputs", "parameters"}</c> in, <c>generated_text</c> and <c>details</c> out,
/// finish reasons <c>length</c>, <c>eos_token</c>, <c>stop_sequence</c>. Errors use the OpenAI shape.
/// </summary>
public sealed class TgiGenerateEndpoint(
    ServedModels models, ApiLimits limits, IRequestPolicy policy, AdmissionGate admission, IOutputGuard guard,
    ShutdownDrain drain, ServerMetrics metrics, TimeProvider time)
{
    /// <summary>TGI's own default for <c>max_new_tokens</c>.</summary>
    public const int DefaultMaxNewTokens = 100;

    public async Task HandleAsync(HttpContext context, bool stream)
    {
        var started = time.GetTimestamp();
        (CompletionJob Job, bool Details, bool FullText, string Inputs) request;
        ModelLease model;
        // TGI's body names no model: the default one serves it.
        using (var body = await JsonBody.ReadAsync(context, limits))
            (model, request) = models.AcquireFor(null, backend => Parse(body.RootElement, stream, backend));
        using var _ = model;
        var (job, details, fullText, inputs) = request;
        await using var grant = await policy.AdmitAsync(context, job.Model, job.ReservedTokens);
        if (grant is null) return; // refused; the policy wrote the answer
        var caller = RequestCaller.Of(context);
        using var lease = await admission.EnterAsync(caller.Priority, context.RequestAborted);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, drain.HardStop);
        var run = new CompletionRun(job, model.Backend, caller, metrics, time, started, guard);
        try
        {
            await RunAsync(context, stream, job, details, fullText, inputs, run, cancel.Token);
        }
        finally
        {
            await grant.SettleAsync(run.PromptTokens, run.CompletionTokens);
        }
    }

    private async Task RunAsync(HttpContext context, bool stream, CompletionJob job, bool details, bool fullText, string inputs, CompletionRun run, CancellationToken cancellationToken)
    {
        var text = new StringBuilder(fullText ? inputs : "");
        var tokens = new List<GeneratedToken>();
        var finish = "length";
        ServerEventStream? events = null;
        if (stream)
        {
            events = new ServerEventStream(context);
            await events.StartAsync(context.RequestAborted);
        }
        // Each token is sent one step late, so the last can carry generated_text and details as TGI's does.
        GeneratedToken? held = null;
        var index = 0;
        await foreach (var delta in run.RunAsync(cancellationToken))
        {
            text.Append(delta.Text);
            if (delta.Finish != FinishReason.None)
                finish = delta.Finish switch { FinishReason.Length => "length", FinishReason.ContentFilter => "content_filter", _ => delta.MatchedStopString ? "stop_sequence" : "eos_token" };
            foreach (var token in delta.Tokens ?? [])
            {
                if (token.IsClosingOnly) continue;
                tokens.Add(token);
                if (events is null) continue;
                if (held is { } previous)
                    await events.WriteAsync((previous, ++index), static (json, s) => WriteTokenEvent(json, s.previous, s.Item2, null), context.RequestAborted);
                held = token;
            }
        }
        context.RequestAborted.ThrowIfCancellationRequested();
        if (drain.HardStop.IsCancellationRequested)
            throw new ApiException(StatusCodes.Status503ServiceUnavailable, "The server is shutting down and cancelled this request before it finished.",
                "server_error", null, "server_shutting_down", TimeSpan.FromSeconds(1));
        var summary = new Summary(text.ToString(), finish, run.CompletionTokens, job.Sampling.Seed);
        if (events is not null)
        {
            var last = held ?? new GeneratedToken(-1, "");
            await events.WriteAsync((last, ++index, summary), static (json, s) => WriteTokenEvent(json, s.last, s.Item2, s.summary), context.RequestAborted);
            return;
        }
        context.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteString("generated_text", summary.Text);
        if (details) WriteDetails(writer, summary, tokens);
        writer.WriteEndObject();
    }

    private (CompletionJob, bool, bool, string) Parse(JsonElement body, bool stream, IGenerationBackend backend)
    {
        var f = new JsonFields(body, "");
        var inputs = f.RequiredString("inputs", limits.MaxPromptCharacters);
        var p = f.Object("parameters") ?? new JsonFields(EmptyObject, "parameters");
        p.Integer("best_of", 1, 1); // TGI's best_of > 1 needs beam-like reranking this server does not do.
        if (p.Get("typical_p") is not null) throw ApiException.Unsupported("parameters.typical_p", "parameters.typical_p is not supported by this server.");
        if (p.Boolean("watermark") == true) throw ApiException.Unsupported("parameters.watermark", "parameters.watermark is not supported by this server.");
        if (p.Object("grammar") is not null) throw ApiException.Unsupported("parameters.grammar", "parameters.grammar is not supported yet.");
        var doSample = p.Boolean("do_sample") ?? false;
        var temperature = p.Number("temperature", 0, 2, minExclusive: true);
        // TGI samples when do_sample is set or any sampling knob is given; otherwise it is greedy.
        var sampling = p.Has("temperature") || p.Has("top_p") || p.Has("top_k") || doSample;
        var prompt = backend.Encode(inputs, addSpecialTokens: true);
        var requested = p.Integer("max_new_tokens", 1, limits.MaxTokens);
        var maxTokens = SamplingFields.MaxTokens(p, "max_new_tokens", (int?)requested, prompt.Length, backend.Model, limits, DefaultMaxNewTokens);
        var parameters = new SamplingParameters
        {
            Temperature = sampling ? (float)(temperature ?? 1) : 0f,
            TopP = (float)(p.Number("top_p", 0, 1, minExclusive: true) ?? 1),
            TopK = (int)(p.Integer("top_k", 1, backend.Model.VocabularySize) ?? 0),
            RepetitionPenalty = (float)(p.Number("repetition_penalty", 0, 2, minExclusive: true) ?? 1),
            FrequencyPenalty = (float)(p.Number("frequency_penalty", -2, 2) ?? 0),
            Seed = p.Integer("seed", 0, long.MaxValue) is { } seed ? (ulong)seed : null,
        };
        var details = p.Boolean("details") ?? false;
        var job = new CompletionJob
        {
            Kind = ResponseKind.Text,
            Model = backend.Model.Id,
            PromptTokenIds = prompt,
            MaxTokens = maxTokens,
            Stop = SamplingFields.Stop(p, limits),
            Sampling = parameters,
            // Streams always carry each token with its log-probability, as TGI's do.
            TopLogprobs = details || stream ? 0 : null,
        };
        return (job, details, p.Boolean("return_full_text") ?? false, inputs);
    }

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement;

    private sealed record Summary(string Text, string Finish, int Generated, ulong? Seed);

    private static void WriteTokenEvent(Utf8JsonWriter json, GeneratedToken token, int index, Summary? summary)
    {
        json.WriteStartObject();
        json.WriteNumber("index", index);
        json.WriteStartObject("token");
        json.WriteNumber("id", token.TokenId);
        json.WriteString("text", token.Text);
        json.WriteNumber("logprob", token.Logprob);
        json.WriteBoolean("special", token.IsClosingOnly);
        json.WriteEndObject();
        if (summary is null)
        {
            json.WriteNull("generated_text");
            json.WriteNull("details");
        }
        else
        {
            json.WriteString("generated_text", summary.Text);
            WriteDetails(json, summary, null);
        }
        json.WriteEndObject();
    }

    private static void WriteDetails(Utf8JsonWriter json, Summary summary, List<GeneratedToken>? tokens)
    {
        json.WriteStartObject("details");
        json.WriteString("finish_reason", summary.Finish);
        json.WriteNumber("generated_tokens", summary.Generated);
        if (summary.Seed is { } s) json.WriteNumber("seed", s); else json.WriteNull("seed");
        if (tokens is not null)
        {
            json.WriteStartArray("prefill");
            json.WriteEndArray();
            json.WriteStartArray("tokens");
            foreach (var t in tokens)
            {
                json.WriteStartObject();
                json.WriteNumber("id", t.TokenId);
                json.WriteString("text", t.Text);
                json.WriteNumber("logprob", t.Logprob);
                json.WriteBoolean("special", false);
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }
        json.WriteEndObject();
    }
}
