using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Bulwark.Server.Guardrails.Input;

namespace Bulwark.Server.Api;

/// <summary>
/// The size of a JSON string value, read from its raw UTF-8 in the request body without making the
/// .NET string: <see cref="Utf16Length"/>, what a field's character limit counts, and
/// <see cref="MinSanitizedUtf8Bytes"/>, the UTF-8 length the input guard's sanitizer leaves of it with
/// runs of spaces and of line breaks cut to one (fewer than any configuration keeps, and fewer than the
/// text itself when the guard is off). A field over its limit, or a prompt over the context, is refused
/// from these before anything copies it (<see cref="PromptLengthBound"/>).
/// </summary>
public readonly record struct JsonStringSize(int Utf16Length, long MinSanitizedUtf8Bytes)
{
    /// <summary>
    /// An upper bound of both sizes that costs nothing: the raw value's length in the body. Every UTF-16
    /// unit and every UTF-8 byte of the value comes from at least one raw byte (an escape such as
    /// <c>\u00e9</c> takes six for at most three).
    /// </summary>
    public static int RawLength(JsonElement value) => Raw(value).Length;

    /// <summary>One pass over the raw value; <paramref name="value"/> must be a string that <see cref="StrictJson"/> let through.</summary>
    public static JsonStringSize Of(JsonElement value)
    {
        var raw = Raw(value);
        var sanitized = new InputSanitizer.Utf8Count(maxSpaceRun: 1, maxNewlineRun: 1);
        var length = 0;
        Span<char> units = stackalloc char[2];
        for (var i = 0; i < raw.Length;)
        {
            var b = raw[i];
            if (b == '\\')
            {
                char c;
                if (raw[i + 1] == 'u')
                {
                    c = (char)ushort.Parse(raw.Slice(i + 2, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
                    i += 6;
                }
                else
                {
                    c = raw[i + 1] switch { (byte)'b' => '\b', (byte)'f' => '\f', (byte)'n' => '\n', (byte)'r' => '\r', (byte)'t' => '\t', var e => (char)e };
                    i += 2;
                }
                sanitized.Add(c);
                length++;
            }
            else if (b < 0x80)
            {
                sanitized.Add((char)b);
                length++;
                i++;
            }
            else
            {
                // StrictJson let only UTF-8 that decodes through; anything else would read as U+FFFD.
                if (Rune.DecodeFromUtf8(raw[i..], out var rune, out var consumed) != OperationStatus.Done) rune = Rune.ReplacementChar;
                i += Math.Max(1, consumed);
                var n = rune.EncodeToUtf16(units);
                for (var k = 0; k < n; k++) sanitized.Add(units[k]);
                length += n;
            }
        }
        return new JsonStringSize(length, sanitized.Bytes);
    }

    /// <summary>The value's raw bytes without its quotes.</summary>
    private static ReadOnlySpan<byte> Raw(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.String) throw new ArgumentException($"a JSON string is needed; got {value.ValueKind}", nameof(value));
        var raw = JsonMarshal.GetRawUtf8Value(value);
        return raw.Length >= 2 && raw[0] == (byte)'"' ? raw[1..^1] : raw;
    }
}
