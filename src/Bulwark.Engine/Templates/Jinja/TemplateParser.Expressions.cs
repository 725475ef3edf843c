namespace Bulwark.Engine.Templates.Jinja;

// Expression grammar, lowest precedence first, exactly as Jinja2's parser nests it:
//   conditional (a if b else c) > or > and > not > comparison > + - > ~ > * / // % > ** > unary - +
//   then postfix (.attr, [item], (call)) and filters/tests (| f, is t).
internal sealed partial class TemplateParser
{
    private static readonly HashSet<string> ComparisonOperators = ["==", "!=", "<", "<=", ">", ">="];

    private Expr ParseExpression(bool withCondition)
    {
        EnterNesting();
        try
        {
            return withCondition ? ParseConditional() : ParseOr();
        }
        finally
        {
            _depth--;
        }
    }

    private Expr ParseConditional()
    {
        var expr = ParseOr();
        while (SkipName("if"))
        {
            var test = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseConditional() : null;
            expr = new ConditionalExpr(test, expr, otherwise);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (SkipName("or"))
            left = new BinaryExpr("or", left, ParseAnd());
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (SkipName("and"))
            left = new BinaryExpr("and", left, ParseNot());
        return left;
    }

    private Expr ParseNot()
    {
        if (!Current.IsName("not"))
            return ParseCompare();
        Next();
        EnterNesting();
        try
        {
            return new UnaryExpr("not", ParseNot());
        }
        finally
        {
            _depth--;
        }
    }

    private Expr ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && ComparisonOperators.Contains(Current.Text))
                rest.Add((Next().Text, ParseMath1()));
            else if (SkipName("in"))
                rest.Add(("in", ParseMath1()));
            else if (Current.IsName("not") && Peek().IsName("in"))
            {
                _pos += 2;
                rest.Add(("notin", ParseMath1()));
            }
            else
                break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
            left = new BinaryExpr(Next().Text, left, ParseConcat());
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (SkipOperator("~"))
            left = new BinaryExpr("~", left, ParseMath2());
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Text is "*" or "/" or "//" or "%")
            left = new BinaryExpr(Next().Text, left, ParsePow());
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (SkipOperator("**"))
            left = new BinaryExpr("**", left, ParseUnary(withFilter: true));
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        EnterNesting();
        try
        {
            Expr node;
            if (Current.IsOperator("-") || Current.IsOperator("+"))
                node = new UnaryExpr(Next().Text, ParseUnary(withFilter: false));
            else
                node = ParsePrimary();
            node = ParsePostfix(node);
            return withFilter ? ParseFilterAndTest(node) : node;
        }
        finally
        {
            _depth--;
        }
    }

    private Expr ParsePrimary()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Name:
                Next();
                return token.Text switch
                {
                    "true" or "True" => new ConstExpr(true),
                    "false" or "False" => new ConstExpr(false),
                    "none" or "None" => new ConstExpr(null),
                    _ => new NameExpr(token.Text),
                };
            case TokenKind.String:
                // Adjacent string literals concatenate, as in Python.
                var text = (string)Next().Value!;
                while (Current.Kind == TokenKind.String)
                    text += (string)Next().Value!;
                return new ConstExpr(text);
            case TokenKind.Integer or TokenKind.Float:
                return new ConstExpr(Next().Value);
            case TokenKind.Operator when token.Text == "(":
                Next();
                var inner = ParseTuple(withCondition: true, explicitParentheses: true);
                ExpectOperator(")");
                return inner;
            case TokenKind.Operator when token.Text == "[":
                Next();
                var items = new List<Expr>();
                while (!Current.IsOperator("]"))
                {
                    if (items.Count > 0)
                        ExpectOperator(",");
                    if (Current.IsOperator("]"))
                        break;
                    items.Add(ParseExpression(withCondition: true));
                }
                ExpectOperator("]");
                return new ListExpr(items, tuple: false);
            case TokenKind.Operator when token.Text == "{":
                Next();
                var pairs = new List<(Expr, Expr)>();
                while (!Current.IsOperator("}"))
                {
                    if (pairs.Count > 0)
                        ExpectOperator(",");
                    if (Current.IsOperator("}"))
                        break;
                    var key = ParseExpression(withCondition: true);
                    ExpectOperator(":");
                    pairs.Add((key, ParseExpression(withCondition: true)));
                }
                ExpectOperator("}");
                return new DictExpr(pairs);
            default:
                throw Error($"unexpected {token}");
        }
    }

    private Expr ParseTuple(bool withCondition, bool explicitParentheses, string? endName = null, bool simplified = false)
    {
        var items = new List<Expr>();
        var isTuple = false;
        while (true)
        {
            if (items.Count > 0)
                ExpectOperator(",");
            if (IsTupleEnd(endName))
                break;
            items.Add(simplified ? ParsePrimary() : ParseExpression(withCondition));
            if (Current.IsOperator(","))
                isTuple = true;
            else
                break;
        }
        if (!isTuple)
        {
            if (items.Count > 0)
                return items[0];
            if (!explicitParentheses)
                throw Error($"Expected an expression, got {Current}");
        }
        return new ListExpr(items, tuple: true);
    }

    private bool IsTupleEnd(string? endName) =>
        Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd || Current.IsOperator(")")
        || (endName is not null && Current.IsName(endName));

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator(".") || Current.IsOperator("["))
                node = ParseSubscript(node);
            else if (Current.IsOperator("("))
                node = new CallExpr(node, ParseCallArguments());
            else
                return node;
        }
    }

    private Expr ParseFilterAndTest(Expr node)
    {
        while (true)
        {
            if (SkipOperator("|"))
            {
                var name = ParseDottedName();
                if (!Filters.Exists(name))
                    throw Error($"No filter named '{name}'.");
                node = new FilterExpr(node, name, Current.IsOperator("(") ? ParseCallArguments() : ArgumentList.Empty);
            }
            else if (SkipName("is"))
            {
                node = ParseTest(node);
            }
            else if (Current.IsOperator("("))
            {
                node = new CallExpr(node, ParseCallArguments());
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseTest(Expr node)
    {
        var negated = SkipName("not");
        var name = ParseDottedName();
        if (!TestFunctions.Exists(name))
            throw Error($"No test named '{name}'.");
        var args = ArgumentList.Empty;
        if (Current.IsOperator("("))
        {
            args = ParseCallArguments();
        }
        else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                  || Current.IsOperator("[") || Current.IsOperator("{"))
                 && !Current.IsName("else") && !Current.IsName("or") && !Current.IsName("and"))
        {
            if (Current.IsName("is"))
                throw Error("You cannot chain multiple tests with is");
            args = new ArgumentList([ParsePostfix(ParsePrimary())], []);
        }
        return new TestExpr(node, name, args, negated);
    }

    private Expr ParseSubscript(Expr node)
    {
        if (SkipOperator("."))
        {
            var token = Next();
            return token.Kind switch
            {
                TokenKind.Name => new AttributeExpr(node, token.Text),
                TokenKind.Integer => new ItemExpr(node, new ConstExpr(token.Value)),
                _ => throw Error($"expected name or number after '.', got {token}"),
            };
        }
        ExpectOperator("[");
        var subscripts = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (subscripts.Count > 0)
                ExpectOperator(",");
            subscripts.Add(ParseSubscribed(node));
        }
        ExpectOperator("]");
        if (subscripts.Count == 1)
            return subscripts[0] is SliceMarker slice ? new SliceExpr(node, slice.Start, slice.Stop, slice.Step) : new ItemExpr(node, subscripts[0]);
        if (subscripts.Any(s => s is SliceMarker))
            throw Error("multi-dimensional slices are not supported");
        return new ItemExpr(node, new ListExpr(subscripts, tuple: true));
    }

    private Expr ParseSubscribed(Expr node)
    {
        Expr? start = null;
        if (!Current.IsOperator(":"))
        {
            start = ParseExpression(withCondition: true);
            if (!Current.IsOperator(":"))
                return start;
        }
        Next();
        Expr? stop = null, step = null;
        if (!Current.IsOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(","))
            stop = ParseExpression(withCondition: true);
        if (SkipOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(","))
            step = ParseExpression(withCondition: true);
        return new SliceMarker(start, stop, step);
    }

    private ArgumentList ParseCallArguments()
    {
        ExpectOperator("(");
        var positional = new List<Expr>();
        var named = new List<(string, Expr)>();
        while (!Current.IsOperator(")"))
        {
            if (positional.Count + named.Count > 0)
            {
                ExpectOperator(",");
                if (Current.IsOperator(")"))
                    break;
            }
            if (Current.IsOperator("*") || Current.IsOperator("**"))
                throw Error("*args and **kwargs in calls are not supported");
            if (Current.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                var key = Next().Text;
                Next();
                named.Add((key, ParseExpression(withCondition: true)));
            }
            else
            {
                if (named.Count > 0)
                    throw Error("positional argument follows keyword argument");
                positional.Add(ParseExpression(withCondition: true));
            }
        }
        ExpectOperator(")");
        return new ArgumentList(positional, named);
    }

    private string ParseDottedName()
    {
        var name = ExpectName();
        while (Current.IsOperator(".") && Peek().Kind == TokenKind.Name)
        {
            Next();
            name += "." + Next().Text;
        }
        return name;
    }

    /// <summary>A slice inside <c>[...]</c> while parsing; becomes a <see cref="SliceExpr"/>.</summary>
    private sealed class SliceMarker(Expr? start, Expr? stop, Expr? step) : Expr
    {
        public Expr? Start { get; } = start;

        public Expr? Stop { get; } = stop;

        public Expr? Step { get; } = step;

        public override object? Evaluate(Renderer r, Scope scope) =>
            throw new InvalidOperationException("slice outside a subscript");
    }
}
