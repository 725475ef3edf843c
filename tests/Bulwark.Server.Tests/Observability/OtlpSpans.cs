using System.Text;

namespace Bulwark.Server.Tests.Observability;

/// <summary>One span as OTLP carried it: ids in lower-case hex, kind and status as the proto's numbers.</summary>
internal sealed record OtlpSpan(string TraceId, string SpanId, string ParentSpanId, string Name, int Kind, Dictionary<string, object> Attributes, int StatusCode, string StatusMessage, string Service)
{
    public const int KindInternal = 1, KindServer = 2, KindClient = 3;
    public const int StatusError = 2;

    public object? this[string attribute] => Attributes.GetValueOrDefault(attribute);
}

/// <summary>
/// Reads the spans out of an OTLP <c>ExportTraceServiceRequest</c> (opentelemetry/proto/collector/trace/v1)
/// with a protobuf wire-format reader of its own, written from the .proto files: only the fields these
/// tests look at, every other field skipped by its wire type. An independent reading of what the
/// exporter sent, not the SDK's own objects.
/// </summary>
internal static class OtlpSpans
{
    public static IEnumerable<OtlpSpan> Decode(byte[] body)
    {
        var spans = new List<OtlpSpan>();
        // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
        foreach (var (field, resourceSpans) in Fields(body))
        {
            if (field != 1) continue;
            var service = "";
            var scopes = new List<byte[]>();
            // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
            foreach (var (f, value) in Fields(resourceSpans))
            {
                if (f == 1)
                    foreach (var (rf, kv) in Fields(value)) // Resource { repeated KeyValue attributes = 1; }
                        if (rf == 1 && KeyValue(kv) is ("service.name", string name)) service = name;
                if (f == 2) scopes.Add(value);
            }
            // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
            foreach (var scope in scopes)
                foreach (var (f, span) in Fields(scope))
                    if (f == 2) spans.Add(Span(span, service));
        }
        return spans;
    }

    private static OtlpSpan Span(byte[] bytes, string service)
    {
        // Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; SpanKind kind = 6;
        //        repeated KeyValue attributes = 9; Status status = 15; }
        string trace = "", id = "", parent = "", name = "", message = "";
        int kind = 0, status = 0;
        var attributes = new Dictionary<string, object>();
        foreach (var (f, value, number) in FieldsWithNumbers(bytes))
        {
            switch (f)
            {
                case 1: trace = Convert.ToHexStringLower(value); break;
                case 2: id = Convert.ToHexStringLower(value); break;
                case 4: parent = Convert.ToHexStringLower(value); break;
                case 5: name = Encoding.UTF8.GetString(value); break;
                case 6: kind = (int)number; break;
                case 9:
                    var (key, v) = KeyValue(value);
                    attributes[key] = v;
                    break;
                case 15: // Status { string message = 2; StatusCode code = 3; }
                    foreach (var (sf, sv, sn) in FieldsWithNumbers(value))
                    {
                        if (sf == 2) message = Encoding.UTF8.GetString(sv);
                        if (sf == 3) status = (int)sn;
                    }
                    break;
            }
        }
        return new OtlpSpan(trace, id, parent, name, kind, attributes, status, message, service);
    }

    /// <summary>KeyValue { string key = 1; AnyValue value = 2; }</summary>
    private static (string Key, object Value) KeyValue(byte[] bytes)
    {
        string key = "";
        object value = "";
        foreach (var (f, v) in Fields(bytes))
        {
            if (f == 1) key = Encoding.UTF8.GetString(v);
            if (f == 2) value = AnyValue(v);
        }
        return (key, value);
    }

    /// <summary>AnyValue { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; ArrayValue array_value = 5; }</summary>
    private static object AnyValue(byte[] bytes)
    {
        foreach (var (f, v, n) in FieldsWithNumbers(bytes))
        {
            switch (f)
            {
                case 1: return Encoding.UTF8.GetString(v);
                case 2: return n != 0;
                case 3: return (long)n;
                case 4: return BitConverter.Int64BitsToDouble((long)n);
                case 5: // ArrayValue { repeated AnyValue values = 1; }
                    return Fields(v).Where(e => e.Field == 1).Select(e => AnyValue(e.Value)).ToArray();
                default: // kvlist_value = 6, bytes_value = 7: Bulwark writes neither, so reading one is a finding
                    throw new InvalidDataException($"AnyValue field {f} is not one Bulwark's spans use");
            }
        }
        return ""; // an AnyValue with no value set
    }

    private static IEnumerable<(int Field, byte[] Value)> Fields(byte[] bytes) =>
        FieldsWithNumbers(bytes).Select(f => (f.Field, f.Value));

    /// <summary>Every field of a message: length-delimited ones as bytes, varints and fixed ones as a number.</summary>
    private static List<(int Field, byte[] Value, ulong Number)> FieldsWithNumbers(byte[] bytes)
    {
        var fields = new List<(int, byte[], ulong)>();
        var at = 0;
        while (at < bytes.Length)
        {
            var tag = Varint(bytes, ref at);
            var field = (int)(tag >> 3);
            switch (tag & 7)
            {
                case 0: fields.Add((field, [], Varint(bytes, ref at))); break;
                case 1: fields.Add((field, [], BitConverter.ToUInt64(bytes, at))); at += 8; break;
                case 2:
                    var length = (int)Varint(bytes, ref at);
                    fields.Add((field, bytes[at..(at + length)], 0));
                    at += length;
                    break;
                case 5: fields.Add((field, [], BitConverter.ToUInt32(bytes, at))); at += 4; break;
                default: throw new InvalidDataException($"wire type {tag & 7} at byte {at}");
            }
        }
        return fields;
    }

    private static ulong Varint(byte[] bytes, ref int at)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = bytes[at++];
            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80) return value;
        }
    }
}
