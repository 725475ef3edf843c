using System.Buffers.Binary;
using System.Text;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Testing;
using static Bulwark.Engine.Tests.Formats.SafetensorsBytes;

namespace Bulwark.Engine.Tests.Formats;

public class SafetensorsReaderTests
{
    private static readonly byte[] EightFloats = new byte[32];

    private static ModelFormatException Refused(byte[] bytes, SafetensorsLimits? limits = null)
    {
        var path = Write(bytes);
        return Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path, limits).Dispose());
    }

    private static ModelFormatException Refused(string header, byte[]? data = null) => Refused(Raw(header, data ?? EightFloats));

    [FixtureFact]
    public void FixtureFileHasTheHuggingFaceTensorsInsideTheFile()
    {
        using var file = SafetensorsFile.Open(Fixtures.PathOf("model-260k", "hf", "model.safetensors"));
        // 5 layers × 9 tensors + embedding + final norm; tied, so no lm_head.
        Assert.Equal(47, file.Tensors.Count);
        var embedding = file.GetTensor("model.embed_tokens.weight");
        Assert.Equal(("F32", GgmlType.F32), (embedding.DType, embedding.Type));
        Assert.Equal(new long[] { 512, 64 }, embedding.Shape);
        Assert.Equal(new long[] { 32, 64 }, file.GetTensor("model.layers.0.self_attn.k_proj.weight").Shape);
        Assert.False(file.TryGetTensor("lm_head.weight", out _));
        var length = new FileInfo(file.Path).Length;
        Assert.All(file.Tensors, t => Assert.True(t.FileOffset >= file.DataOffset && t.FileOffset + t.ByteSize <= length));
    }

    [FixtureFact]
    public void FixtureTensorBytesMatchTheGgufConversionOfTheSameWeights()
    {
        // An independent path to the same numbers: the GGUF file of the same checkpoint.
        using var st = SafetensorsFile.Open(Fixtures.PathOf("model-260k", "hf", "model.safetensors"));
        using var gguf = Bulwark.Engine.Formats.Gguf.GgufFile.Open(Fixtures.PathOf("model-260k", "stories260K-f32.gguf"));
        Assert.Equal(gguf.TensorBytes(gguf.GetTensor("token_embd.weight")).ToArray(), st.TensorBytes(st.GetTensor("model.embed_tokens.weight")).ToArray());
        Assert.Equal(gguf.TensorBytes(gguf.GetTensor("blk.3.ffn_down.weight")).ToArray(), st.TensorBytes(st.GetTensor("model.layers.3.mlp.down_proj.weight")).ToArray());
    }

    [Fact]
    public void EverySupportedDtypeReadsBackItsShapeAndBytes()
    {
        var f16 = new Tensor("half", "F16", [2, 3], Enumerable.Range(0, 12).Select(i => (byte)i).ToArray());
        var bf16 = new Tensor("brain", "BF16", [4], Enumerable.Range(100, 8).Select(i => (byte)i).ToArray());
        var f32 = F32("single", [2], 1.5f, -2f);
        using var file = SafetensorsFile.Open(Write(SafetensorsBytes.Build([f16, bf16, f32], new Dictionary<string, string> { ["format"] = "pt" })));
        Assert.Equal(new[] { "half", "brain", "single" }, file.Tensors.Select(t => t.Name));
        Assert.Equal((GgmlType.F16, 12L), (file.GetTensor("half").Type, file.GetTensor("half").ByteSize));
        Assert.Equal(GgmlType.BF16, file.GetTensor("brain").Type);
        Assert.Equal(bf16.Data, file.TensorBytes(file.GetTensor("brain")).ToArray());
        Assert.Equal(1.5f, BinaryPrimitives.ReadSingleLittleEndian(file.TensorBytes(file.GetTensor("single"))));
        Assert.Equal("pt", file.Metadata["format"]);
    }

    [Fact]
    public void EmptyTensorsAndGapsBetweenTensorsAreAccepted()
    {
        var header = """{"empty":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}""";
        using var file = SafetensorsFile.Open(Write(Raw(header, new byte[24])));
        Assert.Equal(0, file.GetTensor("empty").ByteSize);
        Assert.True(file.TensorBytes(file.GetTensor("empty")).IsEmpty);
        Assert.Equal(file.DataOffset + 16, file.GetTensor("b").FileOffset);
    }

    [Theory]
    [InlineData("I64")]
    [InlineData("F64")]
    [InlineData("F8_E4M3")]
    [InlineData("BOOL")]
    public void DefinedButUnsupportedDtypesAreRefusedWithTheSupportedList(string dtype)
    {
        var e = Refused($$$"""{"w":{"dtype":"{{{dtype}}}","shape":[4],"data_offsets":[0,32]}}""");
        Assert.Contains("w.dtype", e.Message);
        Assert.Contains($"\"{dtype}\" is not supported (supported: F32, F16, BF16, I32)", e.Message);
    }

    [Fact]
    public void UnknownDtypeIsNamedAsSuch()
    {
        var e = Refused("""{"w":{"dtype":"float32","shape":[8],"data_offsets":[0,32]}}""");
        Assert.Contains("\"float32\" is not a safetensors dtype", e.Message);
    }

    [Fact]
    public void FilesShorterThanTheLengthPrefixAreTruncated()
    {
        Assert.Contains("truncated", Refused([]).Message);
        Assert.Contains("truncated", Refused([1, 0, 0, 0, 0, 0, 0]).Message);
    }

    [Fact]
    public void HeaderLengthPastTheFileIsRefused()
    {
        var bytes = Raw("{}", []);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 9);
        var e = Refused(bytes);
        Assert.Contains("header_length", e.Message);
        Assert.Contains("9 but only 8 bytes follow", e.Message);
    }

    [Fact]
    public void HeaderLengthNear2To64IsRefusedBeforeAnythingIsRead()
    {
        var bytes = Raw("{}", []);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue - 7);
        Assert.Contains("exceeds the limit of 104857600 bytes", Refused(bytes).Message);
    }

    [Fact]
    public void HeaderLengthLimitHoldsAtTheLimitAndRefusesOneAbove()
    {
        var header = Encoding.UTF8.GetBytes("""{"__metadata__":{"k":"v"}}""" + new string(' ', 38)); // 64 bytes
        Assert.Equal(64, header.Length);
        var bytes = Raw(header, [], pad: false);
        var path = Write(bytes);
        SafetensorsFile.Open(path, new SafetensorsLimits { MaxHeaderBytes = 64 }).Dispose();
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path, new SafetensorsLimits { MaxHeaderBytes = 63 }));
        Assert.Contains("64 exceeds the limit of 63 bytes", e.Message);
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,36]}}""", "end 36 is past the 32 bytes of data")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[8,4]}}""", "begin 8 is after end 4")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}}""", "[0, 32] holds 32 bytes but shape [4] of F32 needs 16")]
    [InlineData("""{"w":{"dtype":"F16","shape":[8],"data_offsets":[0,32]}}""", "needs 16")]
    [InlineData("""{"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,32]}}""", "exceeds 9223372036854775807")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,32]}}""", "overflows 64 bits")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,32]}}""", "overflows 64 bits")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,18446744073709551615]}}""", "past the 32 bytes")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", "overlaps tensor a")]
    [InlineData("""{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},"b":{"dtype":"F32","shape":[1],"data_offsets":[28,32]}}""", "overlaps tensor a")]
    public void TensorsWhoseBytesDoNotFitAreRefused(string header, string expected)
    {
        var e = Refused(header);
        Assert.Contains(expected, e.Message);
        Assert.Matches(@"^model\.safetensors: \w+\.(shape|data_offsets): ", e.Message);
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}""", "tensor name appears twice")]
    [InlineData("""{"w":{"dtype":"F32","dtype":"F16","shape":[8],"data_offsets":[0,32]}}""", "w.dtype: appears twice")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32],"extra":1}}""", "w.extra: unknown field")]
    [InlineData("""{"w":{"shape":[8],"data_offsets":[0,32]}}""", "w.dtype: is missing")]
    [InlineData("""{"w":{"dtype":"F32","data_offsets":[0,32]}}""", "w.shape: is missing")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8]}}""", "w.data_offsets: is missing")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0]}}""", "exactly 2 numbers")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32,64]}}""", "more than 2 numbers")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-8],"data_offsets":[0,32]}}""", "non-negative integers")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8.0],"data_offsets":[0,32]}}""", "non-negative integers")]
    [InlineData("""{"w":{"dtype":"F32","shape":["8"],"data_offsets":[0,32]}}""", "non-negative integers")]
    [InlineData("""{"w":{"dtype":32,"shape":[8],"data_offsets":[0,32]}}""", "w.dtype: must be a string")]
    [InlineData("""{"w":[1,2]}""", "must be an object")]
    [InlineData("""{"__metadata__":{"k":1}}""", "__metadata__.k: must be a string")]
    [InlineData("""{"__metadata__":{"k":"a","k":"b"}}""", "appears twice")]
    [InlineData("""{"__metadata__":[]}""", "must be an object of strings")]
    [InlineData("""{"w":{"dtype":"F32","shape":[[[8]]],"data_offsets":[0,32]}}""", "header")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}} x""", "is not valid JSON")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},}""", "is not valid JSON")]
    [InlineData("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}""", "header")]
    [InlineData(""" {"w":{}}""", "must start with '{'")]
    public void MalformedHeadersAreRefusedNamingTheField(string header, string expected)
    {
        var e = Refused(header);
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("model.safetensors: ", e.Message);
    }

    [Fact]
    public void DimensionCountIsLimitedAtTheLimitAndAbove()
    {
        var ok = Write(Raw("""{"w":{"dtype":"F32","shape":[1,1,2,4],"data_offsets":[0,32]}}""", EightFloats));
        SafetensorsFile.Open(ok, new SafetensorsLimits { MaxDimensions = 4 }).Dispose();
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(ok, new SafetensorsLimits { MaxDimensions = 3 }));
        Assert.Contains("w.shape: holds more than 3 numbers", e.Message);
    }

    [Fact]
    public void TensorCountIsLimitedAtTheLimitAndAbove()
    {
        var path = Write(SafetensorsBytes.Build([F32("a", [1], 1), F32("b", [1], 2), F32("c", [1], 3)]));
        SafetensorsFile.Open(path, new SafetensorsLimits { MaxTensors = 3 }).Dispose();
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path, new SafetensorsLimits { MaxTensors = 2 }));
        Assert.Contains("more than the limit of 2 tensors", e.Message);
    }

    [Fact]
    public void MetadataEntriesAreLimitedAtTheLimitAndAbove()
    {
        var path = Write(SafetensorsBytes.Build([F32("a", [1], 1)], new Dictionary<string, string> { ["x"] = "1", ["y"] = "2" }));
        SafetensorsFile.Open(path, new SafetensorsLimits { MaxMetadataEntries = 2 }).Dispose();
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path, new SafetensorsLimits { MaxMetadataEntries = 1 }));
        Assert.Contains("more than the limit of 1 entries", e.Message);
    }

    [Fact]
    public void InvalidUtf8InATensorNameIsRefused()
    {
        var header = Encoding.UTF8.GetBytes("""{"wX":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}""");
        header[3] = 0xFF;
        var e = Refused(Raw(header, EightFloats));
        Assert.Contains("not valid UTF-8", e.Message);
    }

    [Fact]
    public void VeryLongNamesAreShortenedInErrors()
    {
        var name = new string('n', 5000);
        var e = Refused($$$"""{"{{{name}}}":{"dtype":"I8","shape":[32],"data_offsets":[0,32]}}""");
        Assert.True(e.Message.Length < 400, e.Message);
        Assert.Contains("(5000 chars)", e.Message);
    }

    [Fact]
    public void MissingTensorErrorNamesFileAndTensor()
    {
        using var file = SafetensorsFile.Open(Write(SafetensorsBytes.Build([F32("a", [1], 1)]), "weights.safetensors"));
        var e = Assert.Throws<ModelFormatException>(() => file.GetTensor("lm_head.weight"));
        Assert.Equal("weights.safetensors: lm_head.weight: tensor is missing", e.Message);
    }
}
