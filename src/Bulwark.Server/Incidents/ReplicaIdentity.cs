using System.Security.Cryptography;

namespace Bulwark.Server.Incidents;

/// <summary>This server process's name among the replicas sharing a store: host, process and a random part (a restarted process is a new replica).</summary>
public sealed class ReplicaIdentity
{
    public string Id { get; } = $"{Environment.MachineName}/{Environment.ProcessId}/{RandomNumberGenerator.GetHexString(6, lowercase: true)}";
}
