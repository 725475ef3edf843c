using System.Text;
using System.Text.Json;

namespace Bulwark.Engine.Tools;

/// <summary>A tool call read from a model's output: OpenAI's id (<c>call_…</c>), the function's name, its arguments as JSON text.</summary>
public sealed record ParsedToolCall(string Id, string Name, string Arguments);

/// <summary>What one push released: text to show as content, and the calls completed (in order; content first).</summary>
public readonly record struct ToolCallOutput(string Content, IReadOnlyList<ParsedToolCall> Calls)
{
    public static readonly ToolCallOutput Empty = new("", []);
}

/// <summary>
/// Reads tool calls out of one choice's streamed text, in the model's <see cref="ToolCallFormat"/>. Text outside
/// calls is released as content as soon as it cannot be the start of a marker (a marker split over several
/// pushes is held until it is known; text that begins like a marker and turns out not to be one is released,
/// never lost). A call is released whole when it ends: Hermes at <c>&lt;/tool_call&gt;</c>, Llama 3 and Mistral
/// (whose calls run to the end of the output) at <see cref="Finish"/>. A call whose JSON is malformed, whose
/// name is not a declared function, or whose arguments are not a JSON object is released as content, markers
/// included, exactly as the model wrote it. Whitespace is held until something follows it: whitespace around
/// calls is dropped, plain text without calls is released unchanged.
/// </summary>
public sealed class ToolCallParser
{
    private const string HermesOpen = "<tool_call>", HermesClose = "</tool_call>", MistralMarker = "[TOOL_CALLS]", PythonTag = "<|python_tag|>";

    private readonly ToolCallFormat _format;
    private readonly IReadOnlySet<string> _names;
    private readonly Func<string> _newId;
    private readonly StringBuilder _buffer = new();
    private readonly StringBuilder _content = new();
    private readonly List<ParsedToolCall> _calls = [];
    private string _whitespace = "";
    private State _state;
    private int _callCount;

    private enum State
    {
        Text,
        /// <summary>Llama 3: nothing but whitespace seen yet; the first character says whether the reply is a call.</summary>
        Start,
        /// <summary>Inside a Hermes call, waiting for its end marker.</summary>
        InCall,
        /// <summary>Llama 3 and Mistral: the calls run to the end of the output.</summary>
        ToEnd,
        /// <summary>Llama 3 reply that is plain text: no more parsing.</summary>
        Plain,
    }

    /// <param name="names">The declared functions; a call of any other name is released as text.</param>
    /// <param name="newId">Ids for the calls (default: <c>call_</c> and 24 random letters and digits).</param>
    public ToolCallParser(ToolCallFormat format, IReadOnlySet<string> names, Func<string>? newId = null)
    {
        if (format == ToolCallFormat.None) throw new ArgumentException("a parser needs a tool-call format", nameof(format));
        _format = format;
        _names = names;
        _newId = newId ?? NewId;
        _state = format == ToolCallFormat.Llama3 ? State.Start : State.Text;
    }

    /// <summary>Calls released so far.</summary>
    public int CallCount => _callCount;

    /// <summary>Which of the pushed characters became content and which a call's, as they are decided.</summary>
    public ContentRuns Runs { get; } = new();

    public static string NewId() => "call_" + System.Security.Cryptography.RandomNumberGenerator.GetString("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 24);

    public ToolCallOutput Push(string text)
    {
        _buffer.Append(text);
        // Perf: inside a call nothing is released until its end, so only the text just pushed (and the marker's length
        // before it) is searched; copying the whole held call at every token would be quadratic in its length.
        if (_state == State.ToEnd || (_state == State.InCall && !EndsInTail(text.Length))) return ToolCallOutput.Empty;
        Scan(final: false);
        return Take();
    }

    /// <summary>Whether the Hermes end marker is in the last <paramref name="pushed"/> characters of the buffer (or runs into them).</summary>
    private bool EndsInTail(int pushed)
    {
        var start = Math.Max(0, _buffer.Length - pushed - (HermesClose.Length - 1));
        return _buffer.ToString(start, _buffer.Length - start).Contains(HermesClose, StringComparison.Ordinal);
    }

    /// <summary>The end of the output: whatever is held is released, as calls or as content.</summary>
    public ToolCallOutput Finish()
    {
        Scan(final: true);
        if (_callCount == 0) _content.Append(_whitespace);
        Runs.Add(_callCount == 0, _whitespace.Length);
        _whitespace = "";
        return Take();
    }

    private void Scan(bool final)
    {
        while (true)
        {
            var buffered = _buffer.ToString();
            switch (_state)
            {
                case State.Start:
                {
                    var first = buffered.AsSpan().IndexOfAnyExcept(" \t\r\n");
                    if (first < 0)
                    {
                        if (final) Text(buffered);
                        else return;
                        _buffer.Clear();
                        return;
                    }
                    var rest = buffered[first..];
                    if (rest.StartsWith('{') || rest.StartsWith(PythonTag, StringComparison.Ordinal)) _state = State.ToEnd;
                    else if (!final && PythonTag.StartsWith(rest, StringComparison.Ordinal)) return;
                    else _state = State.Plain;
                    continue;
                }
                case State.Plain:
                    Text(buffered);
                    _buffer.Clear();
                    return;
                case State.Text:
                {
                    var marker = _format == ToolCallFormat.Hermes ? HermesOpen : MistralMarker;
                    var at = buffered.IndexOf(marker, StringComparison.Ordinal);
                    if (at >= 0)
                    {
                        Text(buffered[..at]);
                        _buffer.Clear().Append(buffered, at + marker.Length, buffered.Length - at - marker.Length);
                        _state = _format == ToolCallFormat.Hermes ? State.InCall : State.ToEnd;
                        continue;
                    }
                    var held = final ? 0 : HeldPrefix(buffered, marker);
                    Text(buffered[..^held]);
                    _buffer.Clear().Append(buffered, buffered.Length - held, held);
                    return;
                }
                case State.InCall:
                {
                    var end = buffered.IndexOf(HermesClose, StringComparison.Ordinal);
                    if (end < 0 && !final) return;
                    var body = end >= 0 ? buffered[..end] : buffered;
                    if (TryCall(body, "arguments") is { } call) Add([call], HermesOpen.Length + body.Length + (end >= 0 ? HermesClose.Length : 0));
                    else Text(HermesOpen + body + (end >= 0 ? HermesClose : ""));
                    _buffer.Clear();
                    if (end >= 0) _buffer.Append(buffered, end + HermesClose.Length, buffered.Length - end - HermesClose.Length);
                    _state = State.Text;
                    if (end < 0) return;
                    continue;
                }
                case State.ToEnd:
                {
                    if (!final) return;
                    var calls = _format == ToolCallFormat.Mistral ? Mistral(buffered) : Llama(buffered);
                    if (calls is not null) Add(calls, (_format == ToolCallFormat.Mistral ? MistralMarker.Length : 0) + buffered.Length);
                    else Text(_format == ToolCallFormat.Mistral ? MistralMarker + buffered : buffered);
                    _buffer.Clear();
                    _state = State.Text;
                    return;
                }
            }
        }
    }

    /// <summary>How many characters at the end of <paramref name="text"/> could be the beginning of <paramref name="marker"/>.</summary>
    private static int HeldPrefix(string text, string marker)
    {
        for (var n = Math.Min(marker.Length - 1, text.Length); n > 0; n--)
            if (text.AsSpan(text.Length - n).SequenceEqual(marker.AsSpan(0, n))) return n;
        return 0;
    }

    /// <summary>Content, with whitespace held until something other than whitespace follows it.</summary>
    private void Text(string text)
    {
        var last = text.AsSpan().LastIndexOfAnyExcept(" \t\r\n");
        if (last < 0)
        {
            _whitespace += text;
            return;
        }
        Runs.Add(true, _whitespace.Length + last + 1);
        _content.Append(_whitespace).Append(text, 0, last + 1);
        _whitespace = text[(last + 1)..];
    }

    /// <param name="consumed">The characters the calls were written in, markers included.</param>
    private void Add(List<ParsedToolCall> calls, int consumed)
    {
        // Whitespace between text and a call, or between calls, is layout, not content.
        Runs.Add(false, _whitespace.Length + consumed);
        _whitespace = "";
        _calls.AddRange(calls);
        _callCount += calls.Count;
    }

    private ToolCallOutput Take()
    {
        if (_content.Length == 0 && _calls.Count == 0) return ToolCallOutput.Empty;
        var output = new ToolCallOutput(_content.ToString(), [.. _calls]);
        _content.Clear();
        _calls.Clear();
        return output;
    }

    /// <summary>Llama 3: optional <c>&lt;|python_tag|&gt;</c>, then one or more call objects separated by <c>;</c>.</summary>
    private List<ParsedToolCall>? Llama(string text)
    {
        var body = text.TrimStart();
        if (body.StartsWith(PythonTag, StringComparison.Ordinal)) body = body[PythonTag.Length..];
        return Sequence(body, ';', "parameters");
    }

    /// <summary>Mistral, after the marker: a JSON array of calls (Nemo), or <c>name[ARGS]{…}</c> pieces, each after its own marker (Small 3.2).</summary>
    private List<ParsedToolCall>? Mistral(string text)
    {
        var body = text.Trim();
        if (body.StartsWith('['))
        {
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() == 0) return null;
                var calls = new List<ParsedToolCall>();
                foreach (var item in doc.RootElement.EnumerateArray())
                    if (Call(item, "arguments") is { } call) calls.Add(call);
                    else return null;
                return calls;
            }
            catch (JsonException)
            {
                return null;
            }
        }
        var result = new List<ParsedToolCall>();
        foreach (var piece in body.Split(MistralMarker))
        {
            var args = piece.IndexOf("[ARGS]", StringComparison.Ordinal);
            if (args < 0) return null;
            var name = piece[..args];
            var id = name.IndexOf("[CALL_ID]", StringComparison.Ordinal);
            if (id >= 0) name = name[..id];
            name = name.Trim();
            if (!_names.Contains(name) || Arguments(piece[(args + 6)..]) is not { } arguments) return null;
            result.Add(new ParsedToolCall(_newId(), name, arguments));
        }
        return result;
    }

    /// <summary>JSON call objects separated by <paramref name="separator"/> and whitespace; null unless the whole text is that.</summary>
    private List<ParsedToolCall>? Sequence(string text, char separator, string argumentsKey)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var calls = new List<ParsedToolCall>();
        var at = 0;
        while (true)
        {
            if (Value(bytes, ref at) is not { } value || Call(value, argumentsKey) is not { } call) return null;
            calls.Add(call);
            while (at < bytes.Length && bytes[at] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') at++;
            if (at == bytes.Length) return calls;
            if (bytes[at] != separator) return null;
            at++;
        }
    }

    /// <summary>One JSON value starting at <paramref name="at"/> (after whitespace), moving past it.</summary>
    private static JsonElement? Value(byte[] bytes, ref int at)
    {
        try
        {
            var reader = new Utf8JsonReader(bytes.AsSpan(at), new JsonReaderOptions { AllowMultipleValues = true });
            using var doc = JsonDocument.ParseValue(ref reader);
            at += (int)reader.BytesConsumed;
            return doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private ParsedToolCall? TryCall(string body, string argumentsKey)
    {
        var calls = Sequence(body.Trim(), '\0', argumentsKey);
        return calls is [var one] ? one : null;
    }

    /// <summary><c>{"name": a declared function, "arguments" (or "parameters"): an object or a string holding one}</c>; missing arguments are <c>{}</c>.</summary>
    private ParsedToolCall? Call(JsonElement e, string argumentsKey)
    {
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String) return null;
        if (!_names.Contains(name.GetString()!)) return null;
        string? arguments = "{}";
        if (e.TryGetProperty(argumentsKey, out var a) || e.TryGetProperty(argumentsKey == "arguments" ? "parameters" : "arguments", out a))
            arguments = a.ValueKind switch
            {
                JsonValueKind.Object => a.GetRawText(),
                JsonValueKind.String => Arguments(a.GetString()!),
                _ => null,
            };
        return arguments is null ? null : new ParsedToolCall(_newId(), name.GetString()!, arguments);
    }

    /// <summary>The text of a JSON object, trimmed; null when it is anything else.</summary>
    private static string? Arguments(string text)
    {
        var trimmed = text.Trim();
        try
        {
            using var doc = JsonDocument.Parse(trimmed);
            return doc.RootElement.ValueKind == JsonValueKind.Object ? trimmed : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
