using System.Text.Json;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// <c>GET /v1/models</c> and <c>GET /v1/models/{id}</c>, with Bulwark's metadata beside OpenAI's
/// fields: every model served now (embedded or upstream; the admin API loads and unloads embedded
/// ones), the default first — only those the caller's key may use.
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
        var caller = context.GetCaller();
        foreach (var model in models.List())
            if (caller is null || caller.CanUseModel(model.Id)) WriteModel(json, model.Backend.Model);
        json.WriteEndArray();
        json.WriteEndObject();
    }

    public async Task GetAsync(HttpContext context, string id)
    {
        ModelCard card;
        using (var lease = models.Acquire(id, context.GetCaller() is { } caller ? caller.CanUseModel : null)) card = lease.Backend.Model;
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
        if (model.ContextLength > 0) json.WriteNumber("max_model_len", model.ContextLength); else json.WriteNull("max_model_len");
        json.WriteStartObject("metadata");
        if (model.ContextLength > 0) json.WriteNumber("context_length", model.ContextLength); else json.WriteNull("context_length");
        if (model.VocabularySize > 0) json.WriteNumber("vocabulary_size", model.VocabularySize); else json.WriteNull("vocabulary_size");
        if (model.Notice is { } notice) json.WriteString("notice", notice);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
