using Bulwark.Server.Backends;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary><c>model</c>: required on OpenAI's routes; a name no model is served under gets 404, as OpenAI answers.</summary>
public static class ModelField
{
    /// <summary>The <c>model</c> a body names (required), read before the model is resolved.</summary>
    public static string Name(System.Text.Json.JsonElement body, ApiLimits limits) =>
        new JsonFields(body, "").RequiredString("model", limits.MaxIdentifierLength);

    /// <summary>The <c>model</c> a body names when it has one; null sends the request to the default model.</summary>
    public static string? OptionalName(JsonFields f, ApiLimits limits) =>
        f.Has("model") ? f.RequiredString("model", limits.MaxIdentifierLength) : null;
}
