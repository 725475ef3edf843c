using System.Text.Json;

namespace Bulwark.Server.Requests;

/// <summary>
/// <c>response_format</c> beyond plain text: <c>json_object</c>, or <c>json_schema</c> with its
/// schema (a detached copy the contract stage has already checked is within what the server
/// enforces).
/// </summary>
public sealed record ResponseFormat(string Type, JsonElement? Schema)
{
    /// <summary>The grammar the contract stage compiled, which constrained decoding enforces (null: compile from the schema when needed).</summary>
    public Bulwark.Engine.Serving.Constraints.Grammar? Grammar { get; init; }
}

/// <summary>The outcome of checking a choice's final text against the requested <c>response_format</c>.</summary>
public sealed record FormatCheck(bool Valid, string? Error)
{
    public static readonly FormatCheck Passed = new(true, null);

    public static FormatCheck Failed(string error) => new(false, error);
}
