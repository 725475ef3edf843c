namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// The functions every template sees: Jinja's <c>range</c>, <c>dict</c> and <c>namespace</c>,
/// plus Hugging Face's <c>raise_exception</c> and <c>strftime_now</c>.
/// </summary>
internal static class Globals
{
    public static void AddTo(Scope scope)
    {
        foreach (var function in All)
            scope.Set(function.Name, function);
    }

    private static readonly BuiltinFunction[] All =
    [
        new("raise_exception", (_, a) =>
        {
            var message = a.Positional.Count > 0 ? PyFormat.Str(a.Positional[0]) : "";
            throw new TemplateException(TemplateErrorKind.Raised, message);
        }),
        new("strftime_now", (r, a) =>
        {
            a.Check("strftime_now", "format");
            var format = a.Required(0, "format", "strftime_now") as string
                ?? throw TemplateException.Type("strftime_now() argument must be str");
            return Strftime.Format(r.Clock.GetLocalNow().DateTime, format);
        }),
        new("namespace", (_, a) =>
        {
            var ns = new Namespace();
            foreach (var positional in a.Positional)
            {
                if (positional is not PyDict initial)
                    throw TemplateException.Type("namespace() takes mappings or keyword arguments");
                foreach (var (k, v) in initial)
                    ns.Attributes.Put(k, v);
            }
            foreach (var (k, v) in a.Named)
                ns.Attributes.Put(k, v);
            return ns;
        }),
        new("dict", (_, a) =>
        {
            var dict = new PyDict();
            foreach (var (k, v) in a.Named)
                dict.Put(k, v);
            return dict;
        }),
        new("range", Range),
    ];

    private static object? Range(Renderer r, CallArguments a)
    {
        var bounds = a.Positional.Select(PyOps.ToLong).ToArray();
        var (start, stop, step) = bounds.Length switch
        {
            1 => (0L, bounds[0], 1L),
            2 => (bounds[0], bounds[1], 1L),
            3 => (bounds[0], bounds[1], bounds[2]),
            _ => throw TemplateException.Type($"range expected 1 to 3 arguments, got {bounds.Length}"),
        };
        if (step == 0)
            throw TemplateException.Type("range() arg 3 must not be zero");
        var count = step > 0
            ? (stop > start ? ((decimal)stop - start + step - 1) / step : 0)
            : (stop < start ? ((decimal)start - stop - step - 1) / -step : 0);
        r.CheckCollectionLength((long)Math.Min(Math.Floor(count), long.MaxValue));
        var list = new PyList();
        for (var v = start; step > 0 ? v < stop : v > stop; v += step)
            list.Add(v);
        return list;
    }
}
