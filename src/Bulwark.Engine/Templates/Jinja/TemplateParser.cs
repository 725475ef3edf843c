namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Recursive-descent parser for the Jinja2 subset chat templates use, following Jinja2's own
/// grammar and operator precedence. Statements are here; expressions are in
/// TemplateParser.Expressions.cs. Unknown tags, filters and tests are rejected at parse time,
/// so a template either uses only what the sandbox implements or does not load at all.
/// </summary>
internal sealed partial class TemplateParser
{
    private readonly List<Token> _tokens;
    private readonly int _maxDepth;
    private int _pos;
    private int _depth;

    private TemplateParser(List<Token> tokens, int maxDepth)
    {
        _tokens = tokens;
        _maxDepth = maxDepth;
    }

    public static List<Statement> Parse(string source, TemplateLimits limits)
    {
        var parser = new TemplateParser(TemplateLexer.Tokenize(source), limits.MaxNestingDepth);
        var (body, end) = parser.ParseBody();
        if (end is not null)
            throw parser.Error($"Encountered unknown tag '{end}'.");
        return body;
    }

    private Token Current => _tokens[_pos];

    private Token Peek(int ahead = 1) => _tokens[Math.Min(_pos + ahead, _tokens.Count - 1)];

    private Token Next() => _tokens[_pos++];

    /// <summary>Parses statements until end of input or a block tag named in <paramref name="endTags"/>, which is consumed (the rest of that tag is not).</summary>
    private (List<Statement> Body, string? EndTag) ParseBody(params string[] endTags)
    {
        EnterNesting();
        try
        {
            var body = new List<Statement>();
            while (true)
            {
                var token = Current;
                switch (token.Kind)
                {
                    case TokenKind.End:
                        if (endTags.Length > 0)
                            throw Error($"Unexpected end of template. Jinja was looking for the following tags: {string.Join(" or ", endTags.Select(t => $"'{t}'"))}.");
                        return (body, null);
                    case TokenKind.Data:
                        Next();
                        body.Add(new TextStatement(token.Text) { Line = token.Line });
                        break;
                    case TokenKind.VariableBegin:
                        Next();
                        var expr = ParseTuple(withCondition: true, explicitParentheses: false);
                        Expect(TokenKind.VariableEnd);
                        body.Add(new OutputStatement(expr) { Line = token.Line });
                        break;
                    case TokenKind.BlockBegin:
                        var tag = Peek();
                        if (tag.Kind != TokenKind.Name)
                            throw Error("tag name expected");
                        if (endTags.Contains(tag.Text))
                        {
                            _pos += 2;
                            return (body, tag.Text);
                        }
                        if (IsEndLike(tag.Text))
                            throw Error(endTags.Length == 0 ? $"Encountered unknown tag '{tag.Text}'." : $"Encountered unknown tag '{tag.Text}'. Jinja was looking for the following tags: {string.Join(" or ", endTags.Select(t => $"'{t}'"))}.");
                        _pos += 2;
                        var statement = ParseStatement(tag.Text);
                        body.Add(statement);
                        break;
                    default:
                        throw Error($"unexpected {token}");
                }
            }
        }
        finally
        {
            _depth--;
        }
    }

    private static bool IsEndLike(string tag) => tag.StartsWith("end", StringComparison.Ordinal) || tag is "else" or "elif";

    private Statement ParseStatement(string tag)
    {
        var line = _tokens[_pos - 1].Line;
        Statement statement = tag switch
        {
            "if" => ParseIf(),
            "for" => ParseFor(),
            "set" => ParseSet(),
            "macro" => ParseMacro(),
            "filter" => ParseFilterBlock(),
            "break" => EndTag(new LoopControlStatement(Flow.Break)),
            "continue" => EndTag(new LoopControlStatement(Flow.Continue)),
            "generation" => EndTag(new BlockStatement(ParseBlockBody("endgeneration"))),
            _ => throw Error($"Encountered unknown tag '{tag}'."),
        };
        statement.Line = line;
        return statement;
    }

    private Statement EndTag(Statement s)
    {
        Expect(TokenKind.BlockEnd);
        return s;
    }

    private List<Statement> ParseBlockBody(string endTag)
    {
        Expect(TokenKind.BlockEnd);
        var (body, _) = ParseBody(endTag);
        return body;
    }

    private Statement ParseIf()
    {
        var branches = new List<(Expr, List<Statement>)>();
        List<Statement>? otherwise = null;
        var test = ParseTuple(withCondition: true, explicitParentheses: false);
        while (true)
        {
            Expect(TokenKind.BlockEnd);
            var (body, end) = ParseBody("elif", "else", "endif");
            branches.Add((test, body));
            if (end == "elif")
            {
                test = ParseTuple(withCondition: true, explicitParentheses: false);
                continue;
            }
            if (end == "else")
                otherwise = ParseBlockBody("endif");
            Expect(TokenKind.BlockEnd);
            return new IfStatement(branches, otherwise);
        }
    }

    private Statement ParseFor()
    {
        var target = ParseAssignTarget(withNamespace: false, endName: "in");
        ExpectName("in");
        var iterable = ParseTuple(withCondition: false, explicitParentheses: false, endName: "recursive");
        Expr? filter = null;
        if (SkipName("if"))
            filter = ParseExpression(withCondition: true);
        if (Current.IsName("recursive"))
            throw Error("recursive for loops are not supported");
        Expect(TokenKind.BlockEnd);
        var (body, end) = ParseBody("endfor", "else");
        List<Statement>? otherwise = null;
        if (end == "else")
            otherwise = ParseBlockBody("endfor");
        Expect(TokenKind.BlockEnd);
        return new ForStatement(target, iterable, filter, body, otherwise);
    }

    private Statement ParseSet()
    {
        var target = ParseAssignTarget(withNamespace: true, endName: null);
        if (SkipOperator("="))
        {
            var value = ParseTuple(withCondition: true, explicitParentheses: false);
            Expect(TokenKind.BlockEnd);
            return new SetStatement(target, value);
        }
        var filters = ParseFilterChain(requireFirstPipe: true);
        var body = ParseBlockBody("endset");
        Expect(TokenKind.BlockEnd);
        return new SetBlockStatement(target, filters, body);
    }

    private Statement ParseMacro()
    {
        var name = ExpectName();
        ExpectOperator("(");
        var parameters = new List<(string, Expr?)>();
        var sawDefault = false;
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0)
                ExpectOperator(",");
            var parameter = ExpectName();
            Expr? fallback = null;
            if (SkipOperator("="))
            {
                fallback = ParseExpression(withCondition: true);
                sawDefault = true;
            }
            else if (sawDefault)
            {
                throw Error("non-default argument follows default argument");
            }
            parameters.Add((parameter, fallback));
        }
        ExpectOperator(")");
        var body = ParseBlockBody("endmacro");
        Expect(TokenKind.BlockEnd);
        return new MacroStatement(name, parameters, body);
    }

    private Statement ParseFilterBlock()
    {
        var filters = ParseFilterChain(requireFirstPipe: false);
        var body = ParseBlockBody("endfilter");
        Expect(TokenKind.BlockEnd);
        return new FilterBlockStatement(filters, body);
    }

    private List<(string, ArgumentList)> ParseFilterChain(bool requireFirstPipe)
    {
        var filters = new List<(string, ArgumentList)>();
        if (!requireFirstPipe)
            filters.Add(ParseFilterName());
        while (SkipOperator("|"))
            filters.Add(ParseFilterName());
        return filters;
    }

    private (string, ArgumentList) ParseFilterName()
    {
        var name = ParseDottedName();
        if (!Filters.Exists(name))
            throw Error($"No filter named '{name}'.");
        return (name, Current.IsOperator("(") ? ParseCallArguments() : ArgumentList.Empty);
    }

    private Target ParseAssignTarget(bool withNamespace, string? endName)
    {
        if (withNamespace && Current.Kind == TokenKind.Name && Peek().IsOperator("."))
        {
            var ns = ExpectName();
            Next();
            return new NamespaceAttributeTarget(ns, ExpectName());
        }
        return ToTarget(ParseTuple(withCondition: false, explicitParentheses: false, endName: endName, simplified: true));
    }

    private Target ToTarget(Expr expr) => expr switch
    {
        NameExpr n when n.Name is not ("true" or "false" or "none" or "True" or "False" or "None") => new NameTarget(n.Name),
        ListExpr { IsTuple: true } t => new TupleTarget(t.Items.Select(ToTarget).ToList()),
        _ => throw Error("can't assign to this expression"),
    };

    private void EnterNesting()
    {
        if (++_depth > _maxDepth)
            throw new TemplateException(TemplateErrorKind.Limit, $"template nests deeper than the limit of {_maxDepth} levels (line {Current.Line})", Current.Line);
    }

    private Token Expect(TokenKind kind)
    {
        if (Current.Kind != kind)
            throw Error($"expected token '{Describe(kind)}', got {Current}");
        return Next();
    }

    private static string Describe(TokenKind kind) => kind switch
    {
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.VariableEnd => "end of print statement",
        TokenKind.Name => "name",
        _ => kind.ToString(),
    };

    private string ExpectName(string? name = null)
    {
        if (Current.Kind != TokenKind.Name || (name is not null && Current.Text != name))
            throw Error($"expected {(name is null ? "a name" : $"'{name}'")}, got {Current}");
        return Next().Text;
    }

    private void ExpectOperator(string op)
    {
        if (!Current.IsOperator(op))
            throw Error($"expected token '{op}', got {Current}");
        Next();
    }

    private bool SkipOperator(string op)
    {
        if (!Current.IsOperator(op))
            return false;
        Next();
        return true;
    }

    private bool SkipName(string name)
    {
        if (!Current.IsName(name))
            return false;
        Next();
        return true;
    }

    private TemplateException Error(string message) =>
        new(TemplateErrorKind.Syntax, $"{message} (line {Current.Line})", Current.Line);
}
