using System.Text;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// The state of one rendering: where output goes, the clock <c>strftime_now</c> reads, and the
/// budgets of <see cref="TemplateLimits"/> that every loop, call and string operation draws on.
/// </summary>
internal sealed class Renderer(TemplateLimits limits, TimeProvider clock)
{
    private readonly Stack<StringBuilder> _outputs = new([new StringBuilder()]);
    private long _operations;
    private long _iterations;
    private int _callDepth;

    public TemplateLimits Limits { get; } = limits;

    public TimeProvider Clock { get; } = clock;

    public string Result => _outputs.Peek().ToString();

    public void Write(string text)
    {
        var output = _outputs.Peek();
        CheckStringLength((long)output.Length + text.Length);
        output.Append(text);
    }

    /// <summary>Runs <paramref name="body"/> with its output collected into a string (macros, set blocks, filter blocks).</summary>
    public string Capture(Action body)
    {
        _outputs.Push(new StringBuilder());
        try
        {
            body();
            return _outputs.Peek().ToString();
        }
        finally
        {
            _outputs.Pop();
        }
    }

    public void CheckStringLength(long length)
    {
        if (length > Limits.MaxOutputLength)
            throw TemplateException.Limit($"template output or string is longer than the limit of {Limits.MaxOutputLength} characters");
    }

    public void CheckCollectionLength(long count)
    {
        if (count > Limits.MaxCollectionLength)
            throw TemplateException.Limit($"template collection has {count} items; the limit is {Limits.MaxCollectionLength}");
    }

    public void CountOperation()
    {
        if (++_operations > Limits.MaxOperations)
            throw TemplateException.Limit($"template ran more than the limit of {Limits.MaxOperations} operations");
    }

    public void CountIteration()
    {
        if (++_iterations > Limits.MaxLoopIterations)
            throw TemplateException.Limit($"template ran more than the limit of {Limits.MaxLoopIterations} loop iterations");
    }

    public void EnterCall(string name)
    {
        if (++_callDepth > Limits.MaxCallDepth)
        {
            _callDepth--;
            throw TemplateException.Limit($"macro calls nest deeper than the limit of {Limits.MaxCallDepth} (in '{name}')");
        }
    }

    public void ExitCall() => _callDepth--;
}
