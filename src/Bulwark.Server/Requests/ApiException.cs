using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Requests;

/// <summary>
/// A request the server refuses, carrying everything OpenAI's error shape needs:
/// <c>{"error":{"message","type","param","code"}}</c>. Messages name the field, the value and the
/// limit. The one error type of every stage: <see cref="ErrorResponse"/> writes it.
/// </summary>
public sealed class ApiException(int status, string message, string type, string? param = null, string? code = null, TimeSpan? retryAfter = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    /// <summary>When set, the response carries <c>Retry-After</c> in whole seconds (at least 1).</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;

    /// <summary>More headers the refusal carries (the rate-limit headers of a 429); they win over <see cref="RetryAfter"/>.</summary>
    public IReadOnlyDictionary<string, string>? Headers { get; init; }

    public static ApiException Invalid(string param, string message, string code = "invalid_value") =>
        new(StatusCodes.Status400BadRequest, message, "invalid_request_error", param, code);

    public static ApiException OutOfRange<T>(string param, T value, string range) =>
        Invalid(param, $"{param} must be {range}; got {value}.");

    public static ApiException WrongType(string param, string expected, string actualKind) =>
        Invalid(param, $"{param} must be {expected}; got {actualKind}.", "invalid_type");

    public static ApiException Unsupported(string param, string message) =>
        Invalid(param, message, "unsupported_value");
}
