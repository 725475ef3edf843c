namespace Bulwark.Engine.Formats.Gguf;

/// <summary>
/// One metadata value. <see cref="Raw"/> holds the natural .NET type: byte, sbyte, ushort, short,
/// uint, int, float, bool, string, ulong, long, double, or <see cref="GgufArray"/>.
/// </summary>
public sealed class GgufValue
{
    public GgufValue(GgufValueType type, object raw)
    {
        Type = type;
        Raw = raw;
    }

    public GgufValueType Type { get; }

    public object Raw { get; }

    public static GgufValue Of(string value) => new(GgufValueType.String, value);
    public static GgufValue Of(uint value) => new(GgufValueType.UInt32, value);
    public static GgufValue Of(int value) => new(GgufValueType.Int32, value);
    public static GgufValue Of(ulong value) => new(GgufValueType.UInt64, value);
    public static GgufValue Of(long value) => new(GgufValueType.Int64, value);
    public static GgufValue Of(float value) => new(GgufValueType.Float32, value);
    public static GgufValue Of(double value) => new(GgufValueType.Float64, value);
    public static GgufValue Of(bool value) => new(GgufValueType.Bool, value);
    public static GgufValue Of(GgufArray value) => new(GgufValueType.Array, value);

    /// <summary>The value as an integer when it is one of the integer types (any width or sign), else null.</summary>
    public long? AsInteger() => Raw switch
    {
        byte v => v,
        sbyte v => v,
        ushort v => v,
        short v => v,
        uint v => v,
        int v => v,
        long v => v,
        ulong v when v <= long.MaxValue => (long)v,
        _ => null,
    };

    /// <summary>The value as a floating-point number when it is float32 or float64, else null.</summary>
    public double? AsFloat() => Raw switch
    {
        float v => v,
        double v => v,
        _ => null,
    };

    public override string ToString() => Raw switch
    {
        string s => s.Length > 64 ? $"\"{s[..64]}...\"" : $"\"{s}\"",
        GgufArray a => $"[{a.ElementType} x {a.Count}]",
        _ => Convert.ToString(Raw, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}

/// <summary>
/// A metadata array. <see cref="Items"/> is a typed .NET array: float[] for float32, string[]
/// for strings, GgufArray[] for nested arrays, and so on (bool[] for bools).
/// </summary>
public sealed class GgufArray
{
    public GgufArray(GgufValueType elementType, Array items)
    {
        ElementType = elementType;
        Items = items;
    }

    public GgufValueType ElementType { get; }

    public Array Items { get; }

    public int Count => Items.Length;

    public static GgufArray Of(string[] items) => new(GgufValueType.String, items);
    public static GgufArray Of(float[] items) => new(GgufValueType.Float32, items);
    public static GgufArray Of(int[] items) => new(GgufValueType.Int32, items);
    public static GgufArray Of(uint[] items) => new(GgufValueType.UInt32, items);
}
