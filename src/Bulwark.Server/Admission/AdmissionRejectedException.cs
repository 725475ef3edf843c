namespace Bulwark.Server.Admission;

/// <summary>Why the admission queue refused a request; each maps to one status and one metric label.</summary>
public enum RejectionReason
{
    /// <summary>The queue already holds its maximum: 429.</summary>
    QueueFull,
    /// <summary>The request waited its maximum without getting a slot: 503.</summary>
    QueueTimeout,
    /// <summary>The server is draining for shutdown: 503.</summary>
    ShuttingDown,
    /// <summary>The request was waiting when the queue was full and a higher-priority one took its place: 429.</summary>
    Shed,
}

public sealed class AdmissionRejectedException(RejectionReason reason, string message) : Exception(message)
{
    public RejectionReason Reason { get; } = reason;
}
