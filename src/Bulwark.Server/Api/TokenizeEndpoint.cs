using System.Text.Json;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;
using Bulwark.Server.Spine;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// vLLM's <c>POST /tokenize</c> (a <c>prompt</c> or chat <c>messages</c>, with <c>tools</c> and <c>tool_choice</c> → token ids) and
/// <c>POST /detokenize</c> (token ids → text), with the same limits as generation and the same
/// policy: the key must be allowed the model, and each call counts against its requests/min and
/// concurrency (<see cref="GenerationSpine.AdmitWithoutGenerationAsync"/>).
/// </summary>
public sealed class TokenizeEndpoint(GenerationSpine spine, ApiLimits limits)
{
    public async Task TokenizeAsync(HttpContext context)
    {
        int[] tokens;
        int contextLength;
        using (var body = await JsonBody.ReadAsync(context, limits))
        {
            var f = new JsonFields(body.RootElement, "");
            // Without a model field the default model tokenizes.
            var (lease, quota) = await spine.AdmitWithoutGenerationAsync(context, ModelField.OptionalName(f, limits));
            using var _ = lease;
            await using var __ = quota;
            var backend = Tokenizing(lease);
            contextLength = lease.Backend.Model.ContextLength;
            if (f.Has("messages"))
            {
                // tools and tool_choice as the chat route reads them (the same 400s), rendered as it renders them, so the count is what a chat request is charged.
                var tools = ToolFields.Read(f, lease.Backend.Model, limits, null, out var unused);
                tokens = backend.EncodeChat(ChatCompletionParser.ReadMessages(f, limits), tools?.Rendered);
            }
            else
            {
                var prompt = f.String("prompt", limits.MaxPromptCharacters)
                    ?? throw ApiException.Invalid("prompt", "prompt or messages is required.", "missing_required_parameter");
                tokens = backend.Encode(prompt, f.Boolean("add_special_tokens") ?? true);
            }
        }
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter);
        json.WriteStartObject();
        json.WriteNumber("count", tokens.Length);
        json.WriteNumber("max_model_len", contextLength);
        json.WriteStartArray("tokens");
        foreach (var t in tokens) json.WriteNumberValue(t);
        json.WriteEndArray();
        json.WriteEndObject();
    }

    public async Task DetokenizeAsync(HttpContext context)
    {
        string text;
        using (var body = await JsonBody.ReadAsync(context, limits))
        {
            var f = new JsonFields(body.RootElement, "");
            var (lease, quota) = await spine.AdmitWithoutGenerationAsync(context, ModelField.OptionalName(f, limits));
            using var _ = lease;
            await using var __ = quota;
            var model = lease.Backend.Model;
            var array = f.Array("tokens", 0, model.ContextLength)
                ?? throw ApiException.Invalid("tokens", "tokens is required.", "missing_required_parameter");
            text = Tokenizing(lease).Decode(TextCompletionParser.TokenIds(array, "tokens", model.VocabularySize));
        }
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter);
        json.WriteStartObject();
        json.WriteString("prompt", text);
        json.WriteEndObject();
    }

    /// <summary>The model's token-level services; a backend without them (an upstream that only generates) gets a clear 400.</summary>
    private static ITokenizingBackend Tokenizing(ModelLease lease) => lease.Backend as ITokenizingBackend
        ?? throw ApiException.Unsupported("model", $"The model '{lease.Backend.Model.Id}' does not offer tokenization on this server.");
}
