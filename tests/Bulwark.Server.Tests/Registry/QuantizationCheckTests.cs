using Bulwark.Engine.Conversion;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Synthesis;
using Bulwark.Server.Registry;

namespace Bulwark.Server.Tests.Registry;

public class QuantizationCheckTests
{
    private static readonly SyntheticModelSpec Spec = new() { Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 512, Context = 128, Seed = 11 };

    private static async Task<RegistryTestBed> ParentWithChild(string name, GgmlType target)
    {
        var bed = new RegistryTestBed(name);
        var f32 = Path.Combine(bed.Root, "f32.gguf");
        SyntheticModel.WriteGguf(Spec, f32);
        await bed.Registry.AddAsync("m", f32, new AddOptions());
        var quantized = Path.Combine(bed.Root, "child.gguf");
        GgufRequantizer.Requantize(f32, quantized, target);
        await bed.Registry.AddAsync("m", quantized, new AddOptions { Parent = "v1", Quantization = target.ToString().ToLowerInvariant() });
        return bed;
    }

    [Fact]
    public async Task AQ8VersionPassesItsCheckAndThenServes()
    {
        var bed = await ParentWithChild(nameof(AQ8VersionPassesItsCheckAndThenServes), GgmlType.Q8_0);
        await Assert.ThrowsAsync<QuantizationGateException>(() => bed.Registry.ResolveVerifiedAsync("m", "v2", false));

        var record = await QuantizationCheck.RunAsync(bed.Registry, "m", "v2", "v1", new GateThresholds(),
            new ProbeOptions { ContinuationTokens = 8 }, TimeProvider.System);

        Assert.True(record.Passed, string.Join("; ", record.Failures));
        Assert.Equal(QuantizationCheck.DefaultProbes.Count, record.Figures.Sequences);
        Assert.True(record.Figures.MeanCosine > 0.999, $"cosine {record.Figures.MeanCosine}");
        Assert.True(record.Figures.MeanKl < 0.01, $"KL {record.Figures.MeanKl}");
        await bed.Registry.ResolveVerifiedAsync("m", "v2", false);
    }

    [Fact]
    public async Task AVersionCheckedAgainstItselfIsRefused()
    {
        var bed = await ParentWithChild(nameof(AVersionCheckedAgainstItselfIsRefused), GgmlType.Q8_0);
        await Assert.ThrowsAsync<RegistryException>(() => QuantizationCheck.RunAsync(bed.Registry, "m", "v2", "v2", new GateThresholds(), new ProbeOptions(), TimeProvider.System));
    }

    [Fact]
    public async Task StrictThresholdsMarkTheVersionFailedAndItDoesNotServe()
    {
        var bed = await ParentWithChild(nameof(StrictThresholdsMarkTheVersionFailedAndItDoesNotServe), GgmlType.Q4_0);
        // No quantized model has zero divergence from its parent: with a KL ceiling of 0 this must fail.
        var record = await QuantizationCheck.RunAsync(bed.Registry, "m", "v2", "v1", new GateThresholds { MaxMeanKl = 0 },
            new ProbeOptions { ContinuationTokens = 4 }, TimeProvider.System);
        Assert.False(record.Passed);
        Assert.Contains(record.Failures, f => f.Contains("KL"));
        var e = await Assert.ThrowsAsync<QuantizationGateException>(() => bed.Registry.ResolveVerifiedAsync("m", "v2", false));
        Assert.Contains("failed its quantization check", e.Message);
    }

    [Fact]
    public async Task ATamperedReferenceIsNotCheckedAgainst()
    {
        var bed = await ParentWithChild(nameof(ATamperedReferenceIsNotCheckedAgainst), GgmlType.Q8_0);
        var parentFile = Directory.GetFiles(bed.Registry.FilesFolder("m", "v1")).Single();
        using (var stream = File.OpenWrite(parentFile)) { stream.Position = 100; stream.WriteByte(0x5A); }
        await Assert.ThrowsAsync<VerificationFailedException>(() => QuantizationCheck.RunAsync(bed.Registry, "m", "v2", "v1", new GateThresholds(), new ProbeOptions(), TimeProvider.System));
    }
}
