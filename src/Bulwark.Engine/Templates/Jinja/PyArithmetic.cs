using System.Text;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Python's arithmetic and concatenation operators. Every operation that can grow a string
/// or a list checks the size first, so doubling a string in a loop stops at the limit
/// instead of exhausting memory.
/// </summary>
internal static class PyArithmetic
{
    public static object? Binary(Renderer r, string op, object? a, object? b)
    {
        if (a is Undefined ua)
            throw ua.Fail();
        if (b is Undefined ub)
            throw ub.Fail();
        return op switch
        {
            "+" => Add(r, a, b),
            "-" => Numeric(op, a, b, (x, y) => checked(x - y), (x, y) => x - y),
            "*" => Multiply(r, a, b),
            "/" => Divide(a, b),
            "//" => FloorDivide(a, b),
            "%" => Modulo(a, b),
            "**" => Power(a, b),
            _ => throw new InvalidOperationException("unknown operator " + op),
        };
    }

    public static string Concat(Renderer r, object? a, object? b)
    {
        var (x, y) = (PyFormat.Str(a), PyFormat.Str(b));
        r.CheckStringLength((long)x.Length + y.Length);
        return x + y;
    }

    // Arms are boxed one by one: a switch mixing long and double arms would widen every result to double.
    public static object? Negate(object? value, bool negative) => value switch
    {
        long l => (object)(negative ? checked(-l) : l),
        bool b => (object)(negative ? -(b ? 1L : 0L) : (b ? 1L : 0L)),
        double d => (object)(negative ? -d : d),
        Undefined u => throw u.Fail(),
        _ => throw TemplateException.Type($"bad operand type for unary {(negative ? '-' : '+')}: '{PyOps.TypeName(value)}'"),
    };

    private static object? Add(Renderer r, object? a, object? b)
    {
        if (a is string sa)
        {
            if (b is not string sb)
                throw TemplateException.Type($"can only concatenate str (not \"{PyOps.TypeName(b)}\") to str");
            r.CheckStringLength((long)sa.Length + sb.Length);
            return sa + sb;
        }
        if (a is PyList la && b is PyList lb)
        {
            r.CheckCollectionLength((long)la.Count + lb.Count);
            var result = a is PyTuple ? new PyTuple(la.Concat(lb)) : new PyList(la.Concat(lb));
            return result;
        }
        if (a is PyList && b is not PyList)
            throw TemplateException.Type($"can only concatenate {PyOps.TypeName(a)} (not \"{PyOps.TypeName(b)}\") to {PyOps.TypeName(a)}");
        return Numeric("+", a, b, (x, y) => checked(x + y), (x, y) => x + y);
    }

    private static object? Multiply(Renderer r, object? a, object? b)
    {
        if (a is string or PyList && b is long or bool)
            return Repeat(r, a, PyOps.ToLong(b));
        if (b is string or PyList && a is long or bool)
            return Repeat(r, b, PyOps.ToLong(a));
        return Numeric("*", a, b, (x, y) => checked(x * y), (x, y) => x * y);
    }

    private static object Repeat(Renderer r, object? sequence, long times)
    {
        times = Math.Max(times, 0);
        if (sequence is string s)
        {
            r.CheckStringLength(s.Length * times);
            return new StringBuilder(s.Length * (int)times).Insert(0, s, (int)times).ToString();
        }
        var list = (PyList)sequence!;
        r.CheckCollectionLength(list.Count * times);
        var items = Enumerable.Repeat(list, (int)times).SelectMany(x => x);
        return sequence is PyTuple ? new PyTuple(items) : new PyList(items);
    }

    private static object Divide(object? a, object? b)
    {
        RequireNumbers("/", a, b);
        var divisor = PyOps.ToDouble(b);
        if (divisor == 0)
            throw TemplateException.Type("division by zero");
        return PyOps.ToDouble(a) / divisor;
    }

    private static object FloorDivide(object? a, object? b)
    {
        RequireNumbers("//", a, b);
        if (a is double || b is double)
        {
            var divisor = PyOps.ToDouble(b);
            if (divisor == 0)
                throw TemplateException.Type("float floor division by zero");
            return Math.Floor(PyOps.ToDouble(a) / divisor);
        }
        var (x, y) = (PyOps.ToLong(a), PyOps.ToLong(b));
        if (y == 0)
            throw TemplateException.Type("integer division or modulo by zero");
        var q = x / y;
        return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static object Modulo(object? a, object? b)
    {
        if (a is string)
            throw TemplateException.Type("printf-style string formatting with % is not supported; use ~ or the format filter");
        RequireNumbers("%", a, b);
        if (a is double || b is double)
        {
            var (x, y) = (PyOps.ToDouble(a), PyOps.ToDouble(b));
            if (y == 0)
                throw TemplateException.Type("float modulo");
            var m = x % y;
            return m != 0 && (m < 0) != (y < 0) ? m + y : m;
        }
        var (p, q) = (PyOps.ToLong(a), PyOps.ToLong(b));
        if (q == 0)
            throw TemplateException.Type("integer division or modulo by zero");
        var rem = p % q;
        return rem != 0 && (rem < 0) != (q < 0) ? rem + q : rem;
    }

    private static object Power(object? a, object? b)
    {
        RequireNumbers("**", a, b);
        if (a is double || b is double || PyOps.ToLong(b) < 0)
            return Math.Pow(PyOps.ToDouble(a), PyOps.ToDouble(b));
        var (x, n) = (PyOps.ToLong(a), PyOps.ToLong(b));
        var result = 1L;
        try
        {
            // Exponentiation by squaring: 64 steps at most, whatever the exponent.
            while (n > 0)
            {
                if ((n & 1) == 1)
                    result = checked(result * x);
                n >>= 1;
                if (n > 0)
                    x = checked(x * x);
            }
        }
        catch (OverflowException)
        {
            throw TemplateException.Limit("integer result of ** is larger than 64 bits");
        }
        return result;
    }

    private static object Numeric(string op, object? a, object? b, Func<long, long, long> integer, Func<double, double, double> real)
    {
        RequireNumbers(op, a, b);
        if (a is double || b is double)
            return real(PyOps.ToDouble(a), PyOps.ToDouble(b));
        try
        {
            return integer(PyOps.ToLong(a), PyOps.ToLong(b));
        }
        catch (OverflowException)
        {
            throw TemplateException.Limit($"integer result of {op} is larger than 64 bits");
        }
    }

    private static void RequireNumbers(string op, object? a, object? b)
    {
        if (!PyOps.IsNumber(a) || !PyOps.IsNumber(b))
            throw TemplateException.Type($"unsupported operand type(s) for {op}: '{PyOps.TypeName(a)}' and '{PyOps.TypeName(b)}'");
    }
}
