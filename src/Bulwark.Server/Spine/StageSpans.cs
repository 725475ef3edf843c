using System.Diagnostics;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Spine;

/// <summary>
/// The spans of the spine's stages, one after the other as siblings under the HTTP server span: entering
/// a stage ends the one before, a failure marks the stage it happened in with its reason code. With
/// tracing off every span is null and this is a field and a few null checks.
/// </summary>
internal struct StageSpans
{
    /// <summary>The stage running now (null between stages or with tracing off).</summary>
    public Activity? Current { get; private set; }

    /// <summary>Ends the running stage and starts <paramref name="name"/>.</summary>
    public Activity? Enter(string name)
    {
        Current?.Stop();
        return Current = BulwarkTracing.Start(name);
    }

    /// <summary>Ends the running stage, which succeeded.</summary>
    public void Done()
    {
        Current?.Stop();
        Current = null;
    }

    /// <summary>Marks the running stage failed with <paramref name="e"/>'s reason code (never its message) and ends it.</summary>
    public void Fail(Exception e, RequestUsage usage)
    {
        BulwarkTracing.Fail(Current, BulwarkTracing.ReasonOf(e, usage));
        Current = null;
    }
}
