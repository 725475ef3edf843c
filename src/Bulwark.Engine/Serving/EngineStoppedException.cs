namespace Bulwark.Engine.Serving;

/// <summary>
/// Ends a request that was still queued or generating when its engine was disposed (model
/// unloaded, server shutting down). An <see cref="ObjectDisposedException"/>, so callers that
/// already handle a disposed engine keep working.
/// </summary>
public sealed class EngineStoppedException()
    : ObjectDisposedException(nameof(LlmEngine), "the engine stopped (model unloaded or server shutting down) before the request finished; retry it");
