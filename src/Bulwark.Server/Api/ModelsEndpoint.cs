using System.Text.Json;
using Bulwark.Server.Backends;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// <c>GET /v1/models</c> and <c>GET /v1/models/{id}</c>, with Bulwark's metadata beside OpenAI's
/// fields: every model loaded now (the admin API loads and unloads them), the default first.
/// </summary>
public sealed class ModelsEndpoint(ServedModels models)
{
    public async Task ListAsync(HttpContext context)
    {
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter);
        json.WriteStartObject();
        json.WriteString("object", "list");
        json.WriteStartArray("data");
        foreach (var model in models.List()) WriteModel(json, model.Backend.Model);
        json.WriteEndArray();
        json.WriteEndObject();
    }

    public async Task GetAsync(HttpContext context, string id)
    {
        ModelCard card;
        using (var lease = models.Acquire(id)) card = lease.Backend.Model;
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter);
        WriteModel(json, card);
    }

    private static void WriteModel(Utf8JsonWriter json, ModelCard model)
    {
        json.WriteStartObject();
        json.WriteString("id", model.Id);
        json.WriteString("object", "model");
        json.WriteNumber("created", model.Created.ToUnixTimeSeconds());
        json.WriteString("owned_by", model.OwnedBy);
        json.WriteNumber("max_model_len", model.ContextLength);
        json.WriteStartObject("metadata");
        json.WriteNumber("context_length", model.ContextLength);
        json.WriteNumber("vocabulary_size", model.VocabularySize);
        if (model.Notice is { } notice) json.WriteString("notice", notice);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
