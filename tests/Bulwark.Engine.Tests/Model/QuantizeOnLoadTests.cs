using Bulwark.Engine.Conversion;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Model.Weights;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// <c>--quantize q8_0|q4_0</c>: quantizing F32/F16/BF16 weights while loading must give the very
/// weights (hence the very logits) of the GGUF that <c>bulwark models quantize</c>
/// (<see cref="GgufRequantizer"/>) or the synthetic generator writes at that type, from GGUF and
/// safetensors sources alike, and must not keep the float file mapped.
/// </summary>
public sealed unsafe class QuantizeOnLoadTests
{
    private static SyntheticModelSpec Spec(string arch, GgmlType type) => new()
    {
        Architecture = arch, DType = type, Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 320, Context = 64, Seed = 11,
    };

    [Theory]
    [InlineData(GgmlType.F32, GgmlType.Q8_0)]
    [InlineData(GgmlType.F32, GgmlType.Q4_0)]
    [InlineData(GgmlType.F16, GgmlType.Q8_0)]
    [InlineData(GgmlType.BF16, GgmlType.Q4_0)]
    public void AGgufQuantizedAtLoadEqualsTheGgufModelsQuantizeWrites(GgmlType stored, GgmlType target)
    {
        var dir = Fixtures.NewTempDirectory("quantize-on-load");
        var source = Path.Combine(dir, "m.gguf");
        SyntheticModel.WriteGguf(Spec("llama", stored), source);
        var written = Path.Combine(dir, "m-q.gguf");
        GgufRequantizer.Requantize(source, written, target);

        using var onLoad = ModelLoader.Load(source, new ModelLoadOptions { QuantizeTo = target });
        using var offline = ModelLoader.Load(written);
        AssertSameWeights(offline, onLoad, target);
        AssertSameLogits(offline, onLoad);
    }

    // qwen2/qwen3/phi3 rotate halves in both formats, so a folder and a GGUF run the same computation: logits are identical.
    [Theory]
    [InlineData("qwen3", false, GgmlType.Q8_0)]
    [InlineData("qwen3", false, GgmlType.Q4_0)]
    [InlineData("qwen2", true, GgmlType.Q8_0)]
    [InlineData("qwen2", true, GgmlType.Q4_0)]
    [InlineData("phi3", false, GgmlType.Q8_0)] // fused q/k/v and gate/up: each view quantized on its own
    [InlineData("phi3", true, GgmlType.Q4_0)]
    public void AnF32ModelQuantizedAtLoadEqualsTheGeneratorsOwnQuantizedGguf(string arch, bool safetensors, GgmlType target)
    {
        var dir = Fixtures.NewTempDirectory("quantize-on-load");
        var source = Path.Combine(dir, safetensors ? "hf" : "f32.gguf");
        if (safetensors) SyntheticModel.WriteSafetensors(Spec(arch, GgmlType.F32), source);
        else SyntheticModel.WriteGguf(Spec(arch, GgmlType.F32), source);
        SyntheticModel.WriteGguf(Spec(arch, target), Path.Combine(dir, "q.gguf"));
        using var onLoad = ModelLoader.Load(source, new ModelLoadOptions { QuantizeTo = target });
        using var generated = ModelLoader.Load(Path.Combine(dir, "q.gguf"));
        AssertSameWeights(generated, onLoad, target);
        AssertSameLogits(generated, onLoad);
    }

    // llama's Hugging Face q/k rows are in rotate-half order: the same rows, permuted; every other matrix is byte-identical.
    [Fact]
    public void ALlamaSafetensorsFolderQuantizedAtLoadHasTheGgufsRowsInRotateHalfOrder()
    {
        var dir = Fixtures.NewTempDirectory("quantize-on-load");
        var spec = Spec("llama", GgmlType.BF16);
        SyntheticModel.WriteSafetensors(spec, Path.Combine(dir, "hf"));
        SyntheticModel.WriteGguf(spec, Path.Combine(dir, "bf16.gguf"));
        GgufRequantizer.Requantize(Path.Combine(dir, "bf16.gguf"), Path.Combine(dir, "q8.gguf"), GgmlType.Q8_0);
        using var hf = ModelLoader.Load(Path.Combine(dir, "hf"), new ModelLoadOptions { QuantizeTo = GgmlType.Q8_0 });
        using var gguf = ModelLoader.Load(Path.Combine(dir, "q8.gguf"));
        for (var l = 0; l < spec.Layers; l++)
        {
            var (a, b) = (gguf.Weights.Layers[l], hf.Weights.Layers[l]);
            foreach (var (x, y) in new[] { (a.Value, b.Value), (a.Output, b.Output), (a.Gate!, b.Gate!), (a.Up!, b.Up!), (a.Down!, b.Down!) })
                Assert.True(Bytes(x).SequenceEqual(Bytes(y)), x.Name);
            foreach (var (x, y, heads) in new[] { (a.Query, b.Query, spec.Heads), (a.Key, b.Key, spec.KvHeads) })
            {
                Assert.Equal(GgmlType.Q8_0, y.Type);
                var ggufRows = Rows(x);
                var hfRows = Rows(y);
                // Row r of head h in GGUF's adjacent-pair order is row (r / 2) + (r % 2) * half of that head in rotate-half order.
                var half = spec.HeadDim / 2;
                for (var h = 0; h < heads; h++)
                    for (var r = 0; r < spec.HeadDim; r++)
                        Assert.True(ggufRows[h * spec.HeadDim + r].SequenceEqual(hfRows[h * spec.HeadDim + r / 2 + r % 2 * half]), $"{x.Name} head {h} row {r}");
            }
        }
        Assert.True(Bytes(gguf.Weights.TokenEmbedding).SequenceEqual(Bytes(hf.Weights.TokenEmbedding)));
    }

    [Fact]
    public void AlreadyQuantizedWeightsStayAsTheyAreAndTheLogSaysSoOnce()
    {
        var dir = Fixtures.NewTempDirectory("quantize-on-load");
        var path = Path.Combine(dir, "q8.gguf");
        SyntheticModel.WriteGguf(Spec("llama", GgmlType.Q8_0), path);
        var notices = new List<string>();
        using var plain = ModelLoader.Load(path);
        using var model = ModelLoader.Load(path, new ModelLoadOptions { QuantizeTo = GgmlType.Q4_0, Notice = notices.Add });
        Assert.Equal(GgmlType.Q8_0, model.Weights.Layers[0].Up!.Type);
        AssertSameLogits(plain, model);
        var notice = Assert.Single(notices);
        Assert.StartsWith("quantized 0 matrices to Q4_0 at load", notice);
        Assert.Contains("left as stored (token_embd.weight Q8_0", notice);
    }

    [Fact]
    public void TheNoticeSaysWhatWasQuantizedAndHowMuchSmallerItGot()
    {
        var dir = Fixtures.NewTempDirectory("quantize-on-load");
        SyntheticModel.WriteSafetensors(Spec("llama", GgmlType.F32), dir);
        var notices = new List<string>();
        using var model = ModelLoader.Load(dir, new ModelLoadOptions { QuantizeTo = GgmlType.Q8_0, Notice = notices.Add });
        // 2 layers × 7 matrices + the embedding + the untied output head.
        Assert.Matches(@"^quantized 16 matrices to Q8_0 at load \([0-9.]+ MiB -> [0-9.]+ MiB\)$", Assert.Single(notices));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheFloatFileIsNoLongerMappedOnceEveryMatrixIsQuantized(bool safetensors)
    {
        if (!OperatingSystem.IsLinux()) return; // /proc/self/maps is the independent witness; Linux only
        var dir = Fixtures.NewTempDirectory("quantize-on-load");
        var spec = Spec("llama", GgmlType.F16);
        string weightsFile;
        string path;
        if (safetensors)
        {
            path = Path.Combine(dir, "hf");
            SyntheticModel.WriteSafetensors(spec, path);
            weightsFile = Path.Combine(path, "model.safetensors");
        }
        else
        {
            path = weightsFile = Path.Combine(dir, "m.gguf");
            SyntheticModel.WriteGguf(spec, path);
        }
        static bool Mapped(string file) => File.ReadAllLines("/proc/self/maps").Any(l => l.EndsWith(" " + Path.GetFullPath(file), StringComparison.Ordinal));

        using (ModelLoader.Load(path))
            Assert.True(Mapped(weightsFile), "a model loaded as stored runs from the mapped file");
        using var quantized = ModelLoader.Load(path, new ModelLoadOptions { QuantizeTo = GgmlType.Q8_0 });
        Assert.False(Mapped(weightsFile), "the F16 file stays mapped after every matrix was quantized");
        AssertRuns(quantized);
    }

    [Theory]
    [InlineData("q8_0", GgmlType.Q8_0)]
    [InlineData("Q4_0", GgmlType.Q4_0)]
    [InlineData(" q8_0 ", GgmlType.Q8_0)]
    [InlineData("none", null)]
    [InlineData("", null)]
    [InlineData(null, null)]
    public void QuantizeValuesParse(string? text, GgmlType? expected) => Assert.Equal(expected, LoadQuantization.Parse(text));

    [Theory]
    [InlineData("q4_k")]
    [InlineData("q8")]
    [InlineData("f16")]
    public void UnknownQuantizeValuesAreRefusedWithTheValue(string text) =>
        Assert.Equal($"--quantize must be q8_0 or q4_0 (or none); got '{text}'", Assert.Throws<ArgumentException>(() => LoadQuantization.Parse(text)).Message);

    private static void AssertSameWeights(LlamaModel expected, LlamaModel actual, GgmlType type)
    {
        IEnumerable<WeightMatrix> All(LlamaModel m) =>
            new[] { m.Weights.TokenEmbedding, m.Weights.Output }.Concat(m.Weights.Layers.SelectMany(l => l.Matrices));
        foreach (var (x, y) in All(expected).Zip(All(actual)))
        {
            Assert.Equal(type, x.Type);
            Assert.Equal(type, y.Type);
            Assert.True(Bytes(x).SequenceEqual(Bytes(y)), $"{x.Name} differs");
        }
    }

    private static void AssertSameLogits(LlamaModel expected, LlamaModel actual)
    {
        using var a = new LlamaSession(expected, 16);
        using var b = new LlamaSession(actual, 16);
        for (var pos = 0; pos < 16; pos++)
        {
            var token = (pos * 37 + 5) % expected.Config.VocabularySize;
            var x = a.Forward(token, pos).ToArray();
            Assert.Equal(x, b.Forward(token, pos).ToArray());
        }
    }

    private static void AssertRuns(LlamaModel model)
    {
        using var session = new LlamaSession(model, 4);
        Assert.All(session.Forward(3, 0).ToArray(), v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>The matrix's rows in their stored layout (rebuilt from the packed copy when that is the only one).</summary>
    private static byte[] Bytes(WeightMatrix m)
    {
        var bytes = new byte[checked((int)(m.RowBytes * m.Rows))];
        for (var r = 0; r < m.Rows; r++) m.StoredRow(r, bytes.AsSpan((int)(r * m.RowBytes), (int)m.RowBytes));
        return bytes;
    }

    private static byte[][] Rows(WeightMatrix m)
    {
        var all = Bytes(m);
        return Enumerable.Range(0, m.Rows).Select(r => all.AsSpan(checked((int)(r * m.RowBytes)), (int)m.RowBytes).ToArray()).ToArray();
    }
}
