using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// The metadata the newer architectures add (Llama 3's rope_freqs.weight, ...) checked at load: each
/// missing or invalid value is refused with a <see cref="ModelFormatException"/> naming the field and the value.
/// </summary>
public sealed class ArchitectureMetadataTests : IDisposable
{
    private readonly string _dir = Fixtures.NewTempDirectory("arch-metadata");

    /// <summary>A valid generated GGUF of <paramref name="spec"/> rewritten with the given changes; returns the refusal.</summary>
    private ModelFormatException Refused(SyntheticModelSpec spec, IReadOnlyDictionary<string, GgufValue?>? metadata = null,
        IReadOnlyDictionary<string, GgufEdit.Tensor?>? tensors = null)
    {
        var valid = Path.Combine(_dir, "valid.gguf");
        var edited = Path.Combine(_dir, "edited.gguf");
        SyntheticModel.WriteGguf(spec, valid);
        using (GgufModelLoader.Load(valid)) { }
        GgufEdit.Rewrite(valid, edited, metadata, tensors);
        return Assert.Throws<ModelFormatException>(() => GgufModelLoader.Load(edited));
    }

    private static SyntheticModelSpec Llama3 => Tests.Model.ArchitectureAgreementTests.Spec("llama3", GgmlType.F32);

    [Theory]
    [InlineData(float.NaN, "factor 2 must be a finite number above 0; got NaN")]
    [InlineData(0f, "factor 2 must be a finite number above 0; got 0")]
    [InlineData(-1f, "factor 2 must be a finite number above 0; got -1")]
    [InlineData(float.PositiveInfinity, "factor 2 must be a finite number above 0; got ")]
    public void Llama3FactorsThatAreNotPositiveFiniteNumbersAreRefused(float bad, string message)
    {
        var e = Refused(Llama3, tensors: new Dictionary<string, GgufEdit.Tensor?> { ["rope_freqs.weight"] = GgufEdit.Tensor.F32(1f, 2f, bad, 8f) });
        Assert.Equal("rope_freqs.weight", e.Field);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Llama3FactorsOfTheWrongCountAreRefused()
    {
        var e = Refused(Llama3, tensors: new Dictionary<string, GgufEdit.Tensor?> { ["rope_freqs.weight"] = GgufEdit.Tensor.F32(1f, 2f, 8f) });
        Assert.Contains("must be F32 [4]; got F32 [3]", e.Message);
    }

    public void Dispose() => Directory.Delete(_dir, true);
}
