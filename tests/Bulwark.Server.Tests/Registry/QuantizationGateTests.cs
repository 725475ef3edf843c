using Bulwark.Engine.Evaluation;
using Bulwark.Server.Registry;

namespace Bulwark.Server.Tests.Registry;

public class QuantizationGateTests
{
    private static readonly ComparisonFigures Good = new(4, 100, 0.999, 0.99, 0.98, 0.001, 0.01);
    private static readonly ComparisonFigures Bad = new(4, 100, 0.95, 0.80, 0.70, 0.30, 1.2);

    private static async Task<(RegistryTestBed Bed, QuantizationGate Gate)> ParentAndChild(string name)
    {
        var bed = new RegistryTestBed(name);
        await bed.Registry.AddAsync("m", bed.MakeFile("m.gguf", 1000, seed: 1), new AddOptions());
        await bed.Registry.AddAsync("m", bed.MakeFile("m.gguf", 1000, seed: 2),
            new AddOptions { Parent = "v1", Quantization = "q4_0", MakeCurrent = true });
        return (bed, new QuantizationGate(bed.Registry, TimeProvider.System));
    }

    private static QuantizationCheckRecord Check(ComparisonFigures figures)
    {
        var thresholds = new GateThresholds();
        var failures = thresholds.Failures(figures);
        return new QuantizationCheckRecord("v2", "v1", DateTimeOffset.UnixEpoch, figures, thresholds, failures.Count == 0, failures);
    }

    [Fact]
    public async Task AnUncheckedQuantizedVersionDoesNotServeAndSaysHowToCheckIt()
    {
        var (bed, _) = await ParentAndChild(nameof(AnUncheckedQuantizedVersionDoesNotServeAndSaysHowToCheckIt));
        var e = await Assert.ThrowsAsync<QuantizationGateException>(() => bed.Registry.ResolveVerifiedAsync("m", null, false));
        Assert.Contains("bulwark models check m --version v2 --against v1", e.Message);
        // The parent is not gated.
        await bed.Registry.ResolveVerifiedAsync("m", "v1", false);
    }

    [Fact]
    public async Task APassingCheckLetsItServe()
    {
        var (bed, gate) = await ParentAndChild(nameof(APassingCheckLetsItServe));
        gate.Record("m", Check(Good));
        Assert.Equal(GateStatus.Passed, gate.Status("m", bed.Registry.Manifest("m", "v2")).Status);
        var (manifest, _) = await bed.Registry.ResolveVerifiedAsync("m", null, false);
        Assert.Equal("v2", manifest.Version);
    }

    [Fact]
    public async Task AFailingCheckIsRefusedWithItsFiguresUntilOverridden()
    {
        var (bed, gate) = await ParentAndChild(nameof(AFailingCheckIsRefusedWithItsFiguresUntilOverridden));
        gate.Record("m", Check(Bad));
        var e = await Assert.ThrowsAsync<QuantizationGateException>(() => bed.Registry.ResolveVerifiedAsync("m", null, false));
        Assert.Contains("top-1 agreement", e.Message);
        Assert.Contains("mean KL divergence", e.Message);
        Assert.Contains("bulwark models override m --version v2", e.Message);

        Assert.Throws<RegistryException>(() => gate.Override("m", "v2", "  "));
        gate.Override("m", "v2", "accepted for the demo");
        var (status, check, over) = gate.Status("m", bed.Registry.Manifest("m", "v2"));
        Assert.Equal(GateStatus.Overridden, status);
        Assert.False(check!.Passed);
        Assert.Equal("accepted for the demo", over!.Reason);
        await bed.Registry.ResolveVerifiedAsync("m", null, false);
    }

    [Fact]
    public async Task RecordsSurviveAReopenedRegistry()
    {
        var (bed, gate) = await ParentAndChild(nameof(RecordsSurviveAReopenedRegistry));
        gate.Record("m", Check(Good));
        var reopened = new QuantizationGate(ModelRegistry.Open(bed.Data), TimeProvider.System);
        var (status, check, _) = reopened.Status("m", bed.Registry.Manifest("m", "v2"));
        Assert.Equal(GateStatus.Passed, status);
        Assert.Equal(Good, check!.Figures);
    }

    [Fact]
    public async Task CheckingAVersionThatDoesNotExistFails()
    {
        var (_, gate) = await ParentAndChild(nameof(CheckingAVersionThatDoesNotExistFails));
        Assert.ThrowsAny<Exception>(() => gate.Record("m", Check(Good) with { Version = "v9" }));
    }

    [Theory]
    [InlineData(0.99, 0.90, 0.05, true)]     // exactly at every threshold passes
    [InlineData(0.9899, 0.90, 0.05, false)]  // just below the cosine threshold
    [InlineData(0.99, 0.8999, 0.05, false)]  // just below the agreement threshold
    [InlineData(0.99, 0.90, 0.0501, false)]  // just above the KL threshold
    [InlineData(double.NaN, 1, 0, false)]    // a NaN figure never passes
    public void ThresholdsAreInclusiveAndNaNFails(double cosine, double top1, double kl, bool passes)
    {
        var figures = new ComparisonFigures(1, 10, cosine, cosine, top1, kl, kl);
        Assert.Equal(passes, new GateThresholds().Failures(figures).Count == 0);
    }
}
