using System.Text.Json;
using Bulwark.Engine.Serving.Constraints;

namespace Bulwark.Server.Requests;

/// <summary>
/// What the output must be, as the contract stage compiled it: the field it came from
/// (<c>response_format</c>, <c>guided_json</c>, <c>guided_regex</c>, <c>guided_choice</c>,
/// <c>parameters.grammar</c>), the grammar the embedded engine decodes under, and the constraint as the
/// client gave it (<see cref="Schema"/>, <see cref="Pattern"/> or <see cref="Choices"/>) for an upstream,
/// which receives it as-is.
/// </summary>
public sealed record OutputConstraint(string Field, Grammar Grammar)
{
    public JsonElement? Schema { get; init; }

    public string? Pattern { get; init; }

    public IReadOnlyList<string>? Choices { get; init; }
}
