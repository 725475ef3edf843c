using System.Text;
using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;
using Bulwark.Server.Spine;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// Text Generation Inference's <c>POST /generate</c> and <c>POST /generate_stream</c>, for teams
/// moving from TGI: <c>{"inputs", "parameters"}</c> in, <c>generated_text</c> and <c>details</c> out,
/// finish reasons <c>length</c>, <c>eos_token</c>, <c>stop_sequence</c>. TGI's body names no model:
/// the default model serves it. Errors use the OpenAI shape.
/// </summary>
public sealed class TgiGenerateEndpoint(GenerationSpine spine, ApiLimits limits)
{
    /// <summary>TGI's own default for <c>max_new_tokens</c>.</summary>
    public const int DefaultMaxNewTokens = 100;

    public async Task HandleAsync(HttpContext context, bool stream)
    {
        var body = await JsonBody.ReadAsync(context, limits);
        var options = default(Options);
        await spine.RunAsync(context, body, static _ => null,
            (root, model) =>
            {
                (var request, options) = Parse(root, stream, model, limits);
                return request;
            },
            run => RespondAsync(context, stream, options, run));
    }

    /// <summary>What TGI's response needs beside the request: the details flag and whether to repeat the inputs.</summary>
    public readonly record struct Options(bool Details, bool FullText);

    private static async Task RespondAsync(HttpContext context, bool stream, Options options, GenerationRun run)
    {
        // The inputs as the model saw them (after the input guard's sanitizing), for return_full_text.
        var text = new StringBuilder(options.FullText ? run.Request.Prompt?.Text : "");
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
        try
        {
            await foreach (var delta in run.GenerateAsync())
            {
                text.Append(delta.Text);
                if (delta.Finish is { } reason)
                    finish = reason switch { FinishReason.Length or FinishReason.Deadline => "length", FinishReason.ContentFilter => "content_filter", _ => delta.StopStringMatched ? "stop_sequence" : "eos_token" };
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
        }
        catch (ApiException error) when (events is not null && !context.RequestAborted.IsCancellationRequested)
        {
            // Headers are gone: the refusal (the server shutting down) goes out as the stream's last event.
            await events.WriteErrorAsync(error, context.RequestAborted);
            return;
        }
        context.RequestAborted.ThrowIfCancellationRequested();
        var summary = new Summary(text.ToString(), finish, run.CompletionTokens, run.Request.Sampling.Seed);
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
        if (options.Details) WriteDetails(writer, summary, tokens);
        writer.WriteEndObject();
    }

    /// <summary>Stage 4 for <c>/generate</c> and <c>/generate_stream</c>: TGI's <c>inputs</c> and <c>parameters</c> validated.</summary>
    public static (GenerationRequest Request, Options Options) Parse(JsonElement body, bool stream, ModelCard model, ApiLimits limits)
    {
        var f = new JsonFields(body, "");
        var inputsValue = f.StringValue("inputs", limits.MaxPromptCharacters)
            ?? throw ApiException.Invalid("inputs", "inputs is required.", "missing_required_parameter");
        PromptLengthBound.RefuseOverContext(inputsValue, "inputs", model);
        var inputs = inputsValue.GetString()!;
        var p = f.Object("parameters") ?? new JsonFields(EmptyObject, "parameters");
        p.Integer("best_of", 1, 1); // TGI's best_of > 1 needs beam-like reranking this server does not do.
        if (p.Get("typical_p") is not null) throw ApiException.Unsupported("parameters.typical_p", "parameters.typical_p is not supported by this server.");
        if (p.Boolean("watermark") == true) throw ApiException.Unsupported("parameters.watermark", "parameters.watermark is not supported by this server.");
        var constraint = ConstraintFields.Tgi(p, limits);
        var doSample = p.Boolean("do_sample") ?? false;
        var temperature = p.Number("temperature", 0, 2, minExclusive: true);
        // TGI samples when do_sample is set or any sampling knob is given; otherwise it is greedy.
        var sampling = p.Has("temperature") || p.Has("top_p") || p.Has("top_k") || doSample;
        var requested = p.Integer("max_new_tokens", 1, limits.MaxTokens);
        var details = p.Boolean("details") ?? false;
        var parameters = new SamplingParams
        {
            Temperature = sampling ? (float)(temperature ?? 1) : 0f,
            TopP = (float)(p.Number("top_p", 0, 1, minExclusive: true) ?? 1),
            TopK = (int)(p.Integer("top_k", 1, model.VocabularyLimit) ?? 0),
            RepetitionPenalty = (float)(p.Number("repetition_penalty", 0, 2, minExclusive: true) ?? 1),
            FrequencyPenalty = (float)(p.Number("frequency_penalty", -2, 2) ?? 0),
            Seed = p.Integer("seed", 0, long.MaxValue),
            StopStrings = SamplingFields.Stop(p, limits),
            // Streams always carry each token with its log-probability, as TGI's do.
            Logprobs = details || stream,
            // TGI's alternatives of each token (its top_tokens), within the same limit as top_logprobs.
            TopLogprobs = (int)(p.Integer("top_n_tokens", 0, limits.MaxTopLogprobs) ?? 0),
        };
        var request = new GenerationRequest
        {
            Model = model.Id,
            Prompt = PromptInput.FromText(inputs),
            Sampling = parameters,
            RequestedMaxTokens = (int?)requested,
            DefaultMaxTokens = DefaultMaxNewTokens,
            MaxTokensParam = p.PathOf("max_new_tokens"),
            Constraint = constraint,
        };
        return (request, new Options(details, p.Boolean("return_full_text") ?? false));
    }

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement;

    private sealed record Summary(string Text, string Finish, int Generated, long? Seed);

    private static void WriteTokenEvent(Utf8JsonWriter json, GeneratedToken token, int index, Summary? summary)
    {
        json.WriteStartObject();
        json.WriteNumber("index", index);
        json.WritePropertyName("token");
        WriteToken(json, token.WireId, token.Text, token.Logprob, token.IsClosingOnly);
        if (token.TopLogprobs is { Length: > 0 } top)
        {
            json.WriteStartArray("top_tokens");
            WriteAlternatives(json, top);
            json.WriteEndArray();
        }
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
            foreach (var t in tokens) WriteToken(json, t.WireId, t.Text, t.Logprob, special: false);
            json.WriteEndArray();
            if (tokens.Any(t => t.TopLogprobs is { Length: > 0 }))
            {
                json.WriteStartArray("top_tokens");
                foreach (var t in tokens)
                {
                    json.WriteStartArray();
                    WriteAlternatives(json, t.TopLogprobs ?? []);
                    json.WriteEndArray();
                }
                json.WriteEndArray();
            }
        }
        json.WriteEndObject();
    }

    private static void WriteAlternatives(Utf8JsonWriter json, TokenLogprob[] alternatives)
    {
        foreach (var alt in alternatives)
            WriteToken(json, GeneratedToken.WireIdOf(alt.TokenId), alt.Text, alt.Logprob, special: false);
    }

    /// <summary>One of TGI's <c>Token</c> objects.</summary>
    private static void WriteToken(Utf8JsonWriter json, int id, string text, float logprob, bool special)
    {
        json.WriteStartObject();
        json.WriteNumber("id", id);
        json.WriteString("text", text);
        json.WriteNumber("logprob", logprob);
        json.WriteBoolean("special", special);
        json.WriteEndObject();
    }
}
