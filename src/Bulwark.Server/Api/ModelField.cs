using Bulwark.Server.Backends;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary><c>model</c>: required, and must name the served model (404 otherwise, as OpenAI answers).</summary>
public static class ModelField
{
    public static string Read(JsonFields f, ModelCard model, ApiLimits limits)
    {
        var name = f.RequiredString("model", limits.MaxIdentifierLength);
        if (!string.Equals(name, model.Id, StringComparison.Ordinal))
            throw new ApiException(StatusCodes.Status404NotFound,
                $"The model '{name}' does not exist; this server serves '{model.Id}'.", "invalid_request_error", "model", "model_not_found");
        return name;
    }
}
