using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>The fast kernels inside a real forward pass (the 260K fixture model).</summary>
public class SessionKernelTests
{
    private static string Model => Fixtures.PathOf("model-260k", "stories260K-f32.gguf");

    [FixtureFact]
    public void ForwardAllocatesNothingPerToken()
    {
        using var model = GgufModelLoader.Load(Model);
        using var session = new LlamaSession(model, 64);
        for (var pos = 0; pos < 4; pos++) session.Forward(pos + 1, pos);
        // Three windows of twelve tokens: an allocation per token shows in every one. Only the
        // smallest must be zero, so that a one-off of the runtime's during a parallel test run
        // (CI once saw 2 KB in one window and could not repeat it) does not fail the property.
        var windows = new long[3];
        for (var w = 0; w < windows.Length; w++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var pos = 4 + 12 * w; pos < 16 + 12 * w; pos++) session.Forward(pos % 300 + 1, pos);
            windows[w] = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.True(windows.Min() == 0, $"bytes allocated per 12-token window: {string.Join(", ", windows)}");
    }
}
