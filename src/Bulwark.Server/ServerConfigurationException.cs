namespace Bulwark.Server;

/// <summary>The configuration cannot be used; <see cref="Exception.Message"/> lists each problem on its own line.</summary>
public sealed class ServerConfigurationException(IReadOnlyList<string> problems)
    : Exception("Invalid configuration:" + Environment.NewLine + string.Join(Environment.NewLine, problems.Select(p => "  - " + p)))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}
