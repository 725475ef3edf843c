namespace Bulwark.Server.Backends;

/// <summary>
/// What <c>/v1/models</c> says about the served model. <see cref="Notice"/> is shown verbatim
/// to users: the demo model uses it to say that its weights are random and how to serve a real one.
/// </summary>
public sealed record ModelCard(
    string Id,
    int ContextLength,
    int VocabularySize,
    DateTimeOffset Created,
    string OwnedBy = "bulwark",
    string? Notice = null);
