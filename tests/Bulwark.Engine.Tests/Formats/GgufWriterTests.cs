using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;

namespace Bulwark.Engine.Tests.Formats;

public class GgufWriterTests
{
    private static GgufWriter EveryValueType() => new GgufWriter()
        .Add("u8", new GgufValue(GgufValueType.UInt8, (byte)200))
        .Add("i8", new GgufValue(GgufValueType.Int8, (sbyte)-100))
        .Add("u16", new GgufValue(GgufValueType.UInt16, (ushort)60000))
        .Add("i16", new GgufValue(GgufValueType.Int16, (short)-30000))
        .Add("u32", 4_000_000_000u)
        .Add("i32", -2_000_000_000)
        .Add("f32", 1.5f)
        .Add("bool", true)
        .Add("string", "héllo ▁ 世界")
        .Add("u64", GgufValue.Of(ulong.MaxValue))
        .Add("i64", GgufValue.Of(long.MinValue))
        .Add("f64", GgufValue.Of(Math.PI))
        .Add("strings", GgufArray.Of(["a", "", "ü"]))
        .Add("floats", GgufArray.Of([1f, -2f]))
        .Add("nested", new GgufArray(GgufValueType.Array, new[] { GgufArray.Of(new[] { 1, 2 }), GgufArray.Of(new[] { 3 }) }))
        .Add("empty", GgufArray.Of(Array.Empty<uint>()))
        .AddTensor("a", GgmlType.F32, [3, 2], new byte[24])
        .AddTensor("b", GgmlType.Q8_0, [64], Enumerable.Range(0, 68).Select(i => (byte)i).ToArray());

    [Fact]
    public void EveryMetadataTypeRoundTrips()
    {
        using var file = GgufFile.Open(GgufTestFiles.Write(EveryValueType()));
        var m = file.Metadata;
        Assert.Equal((byte)200, m["u8"].Raw);
        Assert.Equal((sbyte)-100, m["i8"].Raw);
        Assert.Equal((ushort)60000, m["u16"].Raw);
        Assert.Equal((short)-30000, m["i16"].Raw);
        Assert.Equal(4_000_000_000u, m["u32"].Raw);
        Assert.Equal(-2_000_000_000, m["i32"].Raw);
        Assert.Equal(1.5f, m["f32"].Raw);
        Assert.Equal(true, m["bool"].Raw);
        Assert.Equal("héllo ▁ 世界", m["string"].Raw);
        Assert.Equal(ulong.MaxValue, m["u64"].Raw);
        Assert.Equal(long.MinValue, m["i64"].Raw);
        Assert.Equal(Math.PI, m["f64"].Raw);
        Assert.Equal(new[] { "a", "", "ü" }, file.GetArrayOrNull<string>("strings"));
        Assert.Equal(new[] { 1f, -2f }, file.GetArrayOrNull<float>("floats"));
        var nested = file.GetArrayOrNull<GgufArray>("nested")!;
        Assert.Equal(new[] { 1, 2 }, nested[0].Items);
        Assert.Equal(new[] { 3 }, nested[1].Items);
        Assert.Empty(file.GetArrayOrNull<uint>("empty")!);
        Assert.Equal(new[] { "u8", "i8", "u16" }, file.MetadataInOrder.Take(3).Select(kv => kv.Key));
    }

    [Fact]
    public void TensorsAreAlignedAndTheirBytesRoundTrip()
    {
        using var file = GgufFile.Open(GgufTestFiles.Write(EveryValueType()));
        var b = file.GetTensor("b");
        Assert.Equal(GgmlType.Q8_0, b.Type);
        Assert.Equal(68, b.ByteSize);
        Assert.Equal(0, b.FileOffset % 32);
        Assert.Equal(Enumerable.Range(0, 68).Select(i => (byte)i), file.TensorBytes(b).ToArray());
        Assert.Equal(new long[] { 3, 2 }, file.GetTensor("a").Dimensions);
    }

    [Fact]
    public void CustomAlignmentIsHonoured()
    {
        var writer = new GgufWriter().Add("general.alignment", 64u)
            .AddTensor("x", GgmlType.F16, [3], new byte[6])
            .AddTensor("y", GgmlType.F16, [3], new byte[6]);
        using var file = GgufFile.Open(GgufTestFiles.Write(writer));
        Assert.Equal(64u, file.Alignment);
        Assert.All(file.Tensors, t => Assert.Equal(0, t.FileOffset % 64));
    }

    [Fact]
    public void SameCallsGiveSameBytes()
    {
        var first = new MemoryStream();
        var second = new MemoryStream();
        EveryValueType().WriteTo(first);
        EveryValueType().WriteTo(second);
        Assert.Equal(first.ToArray(), second.ToArray());
    }

    [Fact]
    public void TensorDataOfTheWrongSizeIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => new GgufWriter().AddTensor("w", GgmlType.Q4_0, [32], new byte[17]));
        Assert.Contains("18", e.Message);
    }
}
