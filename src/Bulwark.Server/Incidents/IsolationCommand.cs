using System.Text.Json;
using System.Text.Json.Serialization;
using Bulwark.Server.Redaction;

namespace Bulwark.Server.Incidents;

/// <summary>
/// An isolate or resume order as the incident log carries it: which replica (its
/// <see cref="ReplicaIdentity.Id"/>, or <see cref="AllReplicas"/>), why, and who asked.
/// </summary>
public sealed record IsolationCommand(
    [property: JsonPropertyName("target")] string Target,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("actor")] string Actor)
{
    public const string AllReplicas = "*";
    public const int MaxReasonLength = 500;
    public const int MaxTargetLength = 300;

    /// <summary>A checked command; the reason is redacted (an operator may paste anything into it).</summary>
    /// <exception cref="ArgumentException">The target is empty or too long, or the reason too long, or either holds control characters.</exception>
    public static IsolationCommand Create(string target, string reason, string actor)
    {
        target = target.Trim();
        if (target.Length is 0 or > MaxTargetLength || target.Any(char.IsControl))
            throw new ArgumentException($"replica must be a replica id (see bulwark admin requests) or '{AllReplicas}', at most {MaxTargetLength} printable characters");
        if (reason.Length > MaxReasonLength || reason.Any(c => char.IsControl(c) && c != ' '))
            throw new ArgumentException($"reason must be at most {MaxReasonLength} printable characters; got {reason.Length}");
        return new IsolationCommand(target, SecretRedactor.Redact(reason.Trim()), actor);
    }

    /// <summary>Whether this command is for the replica named <paramref name="replicaId"/>.</summary>
    public bool IsFor(string replicaId) => Target == AllReplicas || Target == replicaId;

    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>The command in an incident event's subject, or null when it is not one.</summary>
    public static IsolationCommand? FromJson(string subject)
    {
        try { return JsonSerializer.Deserialize<IsolationCommand>(subject); }
        catch (JsonException) { return null; }
    }
}
