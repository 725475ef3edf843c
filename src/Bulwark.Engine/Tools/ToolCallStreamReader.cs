using System.Text;

namespace Bulwark.Engine.Tools;

/// <summary>
/// A piece of one streamed tool call, as OpenAI streams it: the opening piece of call <see cref="Index"/> carries its
/// <see cref="Id"/> and <see cref="Name"/> (and no arguments), later pieces only fragments of the arguments' JSON text.
/// </summary>
public readonly record struct ToolCallPiece(int Index, string? Id, string? Name, string Arguments);

/// <summary>What one push released: text to show as content, and call pieces (in order; content first).</summary>
public readonly record struct ToolCallPieces(string Content, IReadOnlyList<ToolCallPiece> Pieces)
{
    public static readonly ToolCallPieces Empty = new("", []);
}

/// <summary>
/// Reads tool calls written under <see cref="ToolCallGrammar"/> (<c>tool_choice</c> required or a named function), and
/// streams each call's arguments as they arrive: the opening piece (id and name) as soon as the name is complete, then
/// every pushed piece of the arguments' JSON as a fragment, so the fragments joined are the call's arguments. The grammar
/// fixes the layout character for character (<see cref="ToolCallGrammar"/>'s markers, <c>{"name": "f", "arguments": </c>,
/// separators), so nothing sent can turn out not to be a call, which is why <see cref="ToolCallParser"/>'s whole-call
/// release (a malformed call falls back to text) is not needed here. If the text still leaves the layout (an output
/// filter rewrote part of it), what is held from that point on is released as content, never lost; the pieces already
/// sent stay sent.
/// </summary>
public sealed class ToolCallStreamReader
{
    private readonly IReadOnlySet<string> _names;
    private readonly Func<string> _newId;
    private readonly string _open, _callOpen, _afterName, _callClose, _next, _close;
    private readonly StringBuilder _held = new();
    private readonly StringBuilder _name = new();
    private readonly StringBuilder _fragment = new();
    private readonly StringBuilder _content = new();
    private readonly List<ToolCallPiece> _pieces = [];
    private State _state;
    private string _literal;
    private State _afterLiteral;
    private int _calls;
    private int _depth;
    private int _at;
    private bool _inString, _escaped, _scalar;

    private enum State
    {
        /// <summary>Matching <see cref="_literal"/>; <see cref="_held"/> holds what matched so far.</summary>
        Literal,
        /// <summary>Inside the name's JSON string.</summary>
        Name,
        /// <summary>At the first character of the arguments' value.</summary>
        ArgumentsStart,
        /// <summary>Inside the arguments' value (an object or array: <see cref="_depth"/> &gt; 0; a string: <see cref="_inString"/>; otherwise a scalar).</summary>
        Arguments,
        /// <summary>After a call: the separator and the next call, or the closing text, or the end.</summary>
        AfterCall,
        /// <summary>Everything written: anything more is content.</summary>
        Done,
        /// <summary>The text left the layout: all of it is content from here on.</summary>
        Text,
    }

    /// <param name="names">The functions the grammar allows; a name outside them leaves the layout.</param>
    /// <param name="newId">Ids for the calls (default: <see cref="ToolCallParser.NewId"/>).</param>
    public ToolCallStreamReader(ToolCallFormat format, IReadOnlySet<string> names, Func<string>? newId = null)
    {
        if (format == ToolCallFormat.None) throw new ArgumentException("a reader needs a tool-call format", nameof(format));
        _names = names;
        _newId = newId ?? ToolCallParser.NewId;
        // The texts ToolCallGrammar.Compile writes around each call (keep the two in step; a test holds them together).
        (_open, _callOpen, _afterName, _callClose, _next, _close) = format switch
        {
            ToolCallFormat.Hermes => ("", "<tool_call>\n{\"name\": \"", ", \"arguments\": ", "}\n</tool_call>", "\n", ""),
            ToolCallFormat.Llama3 => ("", "{\"name\": \"", ", \"parameters\": ", "}", "; ", ""),
            _ => ("[TOOL_CALLS][", "{\"name\": \"", ", \"arguments\": ", "}", ", ", "]"),
        };
        _literal = _open + _callOpen;
        _afterLiteral = State.Name;
        _state = State.Literal;
    }

    /// <summary>Calls opened so far.</summary>
    public int CallCount => _calls;

    /// <summary>Which of the pushed characters became content and which a call's, as they are decided.</summary>
    public ContentRuns Runs { get; } = new();

    public ToolCallPieces Push(string text)
    {
        foreach (var c in text) Read(c);
        return Take();
    }

    /// <summary>The end of the output: text held while it could still have been layout is released as content.</summary>
    public ToolCallPieces Finish()
    {
        if (_state is State.Literal or State.Name or State.AfterCall && _held.Length > 0) Leave();
        // A scalar argument ends where its text ends.
        if (_state == State.Arguments && _scalar) _state = State.Done;
        return Take();
    }

    private void Read(char c)
    {
        switch (_state)
        {
            case State.Literal:
                _held.Append(c);
                if (_literal[_at++] != c) Leave();
                else if (_at == _literal.Length)
                {
                    _at = 0;
                    _state = _afterLiteral;
                    // Text before a name stays held until the name is known; any other literal completes layout already sent.
                    if (_state != State.Name) Decided();
                }
                return;
            case State.Name:
                _held.Append(c);
                if (c != '"')
                {
                    // Names are a-z, A-Z, 0-9, _ and - (the contract checks them), so the grammar writes them unescaped.
                    if (char.IsAsciiLetterOrDigit(c) || c is '_' or '-') _name.Append(c);
                    else Leave();
                    return;
                }
                var name = _name.ToString();
                _name.Clear();
                if (!_names.Contains(name))
                {
                    Leave();
                    return;
                }
                Decided();
                _pieces.Add(new ToolCallPiece(_calls++, _newId(), name, ""));
                Expect(_afterName, State.ArgumentsStart);
                return;
            case State.ArgumentsStart:
                if (IsDelimiter(c))
                {
                    _held.Append(c);
                    Leave();
                    return;
                }
                _state = State.Arguments;
                _depth = 0;
                _inString = _escaped = _scalar = false;
                Argument(c);
                return;
            case State.Arguments:
                Argument(c);
                return;
            case State.AfterCall:
                _held.Append(c);
                var held = _held.ToString();
                var next = _next + _callOpen;
                if (next.StartsWith(held, StringComparison.Ordinal))
                {
                    if (held.Length == next.Length) _state = State.Name;
                }
                else if (_close.Length > 0 && _close.StartsWith(held, StringComparison.Ordinal))
                {
                    if (held.Length < _close.Length) return;
                    Decided();
                    _state = State.Done;
                }
                else Leave();
                return;
            default:
                _content.Append(c);
                Runs.Add(true, 1);
                return;
        }
    }

    private static bool IsDelimiter(char c) => c is ',' or '}' or ']' or ' ' or '\t' or '\r' or '\n';

    /// <summary>One character of the arguments' value; a delimiter after a scalar ends it and is read as layout.</summary>
    private void Argument(char c)
    {
        if (_inString)
        {
            _fragment.Append(c);
            Runs.Add(false, 1);
            if (_escaped) _escaped = false;
            else if (c == '\\') _escaped = true;
            else if (c == '"')
            {
                _inString = false;
                if (_depth == 0) EndArguments();
            }
            return;
        }
        if (_depth == 0 && _scalar && IsDelimiter(c))
        {
            EndArguments();
            Read(c);
            return;
        }
        _fragment.Append(c);
        Runs.Add(false, 1);
        switch (c)
        {
            case '"':
                _inString = true;
                break;
            case '{' or '[':
                _depth++;
                break;
            case '}' or ']':
                if (--_depth == 0) EndArguments();
                break;
            default:
                if (_depth == 0) _scalar = true;
                break;
        }
    }

    private void EndArguments()
    {
        Fragment();
        Expect(_callClose, State.AfterCall);
    }

    /// <summary>The held text is a call's layout.</summary>
    private void Decided()
    {
        Runs.Add(false, _held.Length);
        _held.Clear();
    }

    private void Expect(string literal, State then)
    {
        _literal = literal;
        _at = 0;
        _afterLiteral = then;
        _state = State.Literal;
    }

    /// <summary>The text left the layout: what was held, and everything after it, is content.</summary>
    private void Leave()
    {
        Fragment();
        _content.Append(_held);
        Runs.Add(true, _held.Length);
        _held.Clear();
        _name.Clear();
        _state = State.Text;
    }

    private void Fragment()
    {
        if (_fragment.Length == 0) return;
        _pieces.Add(new ToolCallPiece(_calls - 1, null, null, _fragment.ToString()));
        _fragment.Clear();
    }

    private ToolCallPieces Take()
    {
        if (_state == State.Arguments) Fragment();
        if (_content.Length == 0 && _pieces.Count == 0) return ToolCallPieces.Empty;
        var output = new ToolCallPieces(_content.ToString(), [.. _pieces]);
        _content.Clear();
        _pieces.Clear();
        return output;
    }
}
