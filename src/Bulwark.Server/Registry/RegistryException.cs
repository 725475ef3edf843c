namespace Bulwark.Server.Registry;

/// <summary>A registry, manifest, verification or pull failure, with a message fit for an operator.</summary>
public class RegistryException(string message) : Exception(message);

/// <summary>A model version whose files do not match its manifest (or whose signature fails): it must not load.</summary>
public sealed class VerificationFailedException(string message, IReadOnlyList<string> problems) : RegistryException(message)
{
    public IReadOnlyList<string> Problems { get; } = problems;
}
