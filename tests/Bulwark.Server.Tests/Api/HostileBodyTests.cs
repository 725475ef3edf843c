using System.Text;
using System.Text.Json;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Api;

/// <summary>
/// Bodies a JSON library accepts but a careless reader chokes on — invalid UTF-8 and unpaired
/// surrogates inside strings and property names, numbers beyond every type, NaN and Infinity,
/// duplicate keys, deep nesting, wrong types — sent over raw HTTP to every route that reads JSON.
/// Each must get 400 in OpenAI's error shape, with <c>param</c> naming the field that was wrong.
/// </summary>
public sealed class HostileBodyTests(HostileBodyTests.Server server) : IClassFixture<HostileBodyTests.Server>
{
    public sealed class Server : IAsyncLifetime
    {
        public RunningServer Running { get; private set; } = null!;

        public HttpClient Admin { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Running = await RunningServer.StartAsync(new ScriptedBackend { EndAfter = 2 });
            var key = await Running.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "ops", IsAdmin = true }, "tests");
            Admin = Running.Client(key.Key);
        }

        public async Task DisposeAsync()
        {
            Admin.Dispose();
            await Running.DisposeAsync();
        }
    }

    /// <summary>
    /// A route and a valid body with four slots: %P% (extra members at the front), %S% (a string
    /// value), %I% (an integer value), %N% (a floating-point value); a slot a route lacks is null.
    /// </summary>
    public sealed record Route(
        string Name, string Method, string Path, string Template,
        string StringParam, string StringValue, string? IntegerParam, string? IntegerValue, string? NumberParam, string? NumberValue,
        string DuplicateKey, string DuplicateValue)
    {
        public override string ToString() => Name;
    }

    private static readonly Route[] Routes =
    [
        new("chat", "POST", "v1/chat/completions",
            """{%P%"model":"test-model","messages":[{"role":"user","content":%S%}],"max_tokens":%I%,"temperature":%N%}""",
            "messages[0].content", "\"hi\"", "max_tokens", "2", "temperature", "0", "model", "\"test-model\""),
        new("chat-stream", "POST", "v1/chat/completions",
            """{%P%"model":"test-model","stream":true,"messages":[{"role":"user","content":%S%}],"max_completion_tokens":%I%,"top_p":%N%}""",
            "messages[0].content", "\"hi\"", "max_completion_tokens", "2", "top_p", "0.5", "stream", "true"),
        new("completion", "POST", "v1/completions",
            """{%P%"model":"test-model","prompt":%S%,"max_tokens":%I%,"frequency_penalty":%N%}""",
            "prompt", "\"hi\"", "max_tokens", "2", "frequency_penalty", "0", "prompt", "\"hi\""),
        new("completion-stream", "POST", "v1/completions",
            """{%P%"model":"test-model","stream":true,"prompt":["hi"],"stop":[%S%],"n":%I%,"presence_penalty":%N%}""",
            "stop[0]", "\"zz\"", "n", "1", "presence_penalty", "0", "n", "1"),
        new("tokenize", "POST", "tokenize",
            """{%P%"model":"test-model","prompt":%S%}""",
            "prompt", "\"hi\"", null, null, null, null, "prompt", "\"hi\""),
        new("tokenize-chat", "POST", "tokenize",
            """{%P%"model":"test-model","messages":[{"role":"user","content":"hi","name":%S%}]}""",
            "messages[0].name", "\"bob\"", null, null, null, null, "model", "\"test-model\""),
        new("detokenize", "POST", "detokenize",
            """{%P%"model":%S%,"tokens":[104,%I%]}""",
            "model", "\"test-model\"", "tokens[1]", "105", null, null, "tokens", "[104]"),
        new("generate", "POST", "generate",
            """{%P%"inputs":%S%,"parameters":{"max_new_tokens":%I%,"temperature":%N%}}""",
            "inputs", "\"hi\"", "parameters.max_new_tokens", "2", "parameters.temperature", "0.5", "inputs", "\"hi\""),
        new("generate-stream", "POST", "generate_stream",
            """{%P%"inputs":"hi","parameters":{"stop":[%S%],"seed":%I%,"top_p":%N%}}""",
            "parameters.stop[0]", "\"zz\"", "parameters.seed", "7", "parameters.top_p", "0.5", "parameters", "{}"),
        new("admin-keys", "POST", "admin/keys",
            """{%P%"name":%S%,"rpm":%I%}""",
            "name", "\"hostile-body\"", "rpm", "5", null, null, "name", "\"other\""),
        new("admin-ip-blocks", "POST", "admin/ip-blocks",
            """{%P%"cidr":%S%,"reason":"tests"}""",
            "cidr", "\"10.98.76.0/24\"", null, null, null, null, "reason", "\"again\""),
        new("admin-log-level", "PUT", "admin/log-level",
            """{%P%"level":%S%}""",
            "level", "\"Information\"", null, null, null, null, "level", "\"Warning\""),
    ];

    public enum Slot { Front, String, Integer, Number }

    /// <summary>A hostile value for one slot, and the param the refusal must name (null: the value is fine).</summary>
    public sealed record Case(string Name, Slot Where, byte[] Value, string? Param = null, bool ParamIsPrefix = false)
    {
        public override string ToString() => Name;
    }

    private static byte[] B(string ascii) => Encoding.UTF8.GetBytes(ascii);

    private static byte[] B(params object[] parts) => [.. parts.SelectMany(p => p is string s ? B(s) : (byte[])p)];

    private static string Nested(int depth) => new string('[', depth) + new string(']', depth);

    private static readonly Case[] Cases =
    [
        // Strings whose bytes are not UTF-8, and escapes that make no UTF-16.
        new("invalid UTF-8 byte", Slot.String, B("\"h", new byte[] { 0xFF }, "i\"")),
        new("truncated UTF-8 sequence", Slot.String, B("\"h", new byte[] { 0xC3 }, "\"")),
        new("UTF-8-encoded surrogate", Slot.String, B("\"", new byte[] { 0xED, 0xA0, 0x80 }, "\"")),
        new("overlong UTF-8", Slot.String, B("\"", new byte[] { 0xC0, 0xAF }, "\"")),
        new("lone high surrogate escape", Slot.String, B("\"a\\ud800b\"")),
        new("lone low surrogate escape", Slot.String, B("\"\\udc00\"")),
        new("reversed surrogate escapes", Slot.String, B("\"\\udc00\\ud800\"")),
        new("high surrogate escape at the end", Slot.String, B("\"x\\ud83d\"")),
        new("number for a string", Slot.String, B("5")),
        new("nesting far too deep in a value", Slot.String, B(Nested(40)), ParamIsPrefix: true),
        new("NaN for a string", Slot.String, B("NaN")),
        // Numbers beyond the field's type.
        new("20-digit integer", Slot.Integer, B("99999999999999999999")),
        new("20-digit negative integer", Slot.Integer, B("-99999999999999999999")),
        new("1e400 for an integer", Slot.Integer, B("1e400")),
        new("fraction for an integer", Slot.Integer, B("2.5")),
        new("string for an integer", Slot.Integer, B("\"2\"")),
        new("Infinity for an integer", Slot.Integer, B("Infinity")),
        new("1e400", Slot.Number, B("1e400")),
        new("-1e400", Slot.Number, B("-1e400")),
        new("NaN", Slot.Number, B("NaN")),
        new("Infinity", Slot.Number, B("Infinity")),
        new("-Infinity", Slot.Number, B("-Infinity")),
        new("lower-case nan", Slot.Number, B("nan")),
        new("string for a number", Slot.Number, B("\"0.5\"")),
        new("object for a number", Slot.Number, B("{}")),
        // Members in front of the route's own, which the route does not read.
        new("invalid UTF-8 in a property name", Slot.Front, B("\"", new byte[] { 0xFF }, "\":1,"), "body"),
        new("lone surrogate in a property name", Slot.Front, B("\"\\ud800\":1,"), "body"),
        new("invalid UTF-8 in a nested property name", Slot.Front, B("\"x\":{\"", new byte[] { 0xFE }, "\":1},"), "x"),
        new("invalid UTF-8 in an unknown field", Slot.Front, B("\"x\":\"", new byte[] { 0xFF }, "\","), "x"),
        new("lone surrogate in an unknown field", Slot.Front, B("\"x\":[\"\\ud800\"],"), "x[0]"),
        new("duplicate unknown field", Slot.Front, B("\"x\":1,\"x\":2,"), "x"),
        new("duplicate spelled with an escape", Slot.Front, B("\"x\":1,\"\\u0078\":2,"), "x"),
        new("duplicate inside a nested object", Slot.Front, B("\"x\":{\"a\":1,\"a\":2},"), "x.a"),
        new("NaN in an unknown field", Slot.Front, B("\"x\":NaN,"), "x"),
        new("nesting one level too deep", Slot.Front, B($"\"x\":{Nested(32)},"), "x", ParamIsPrefix: true),
    ];

    public static TheoryData<Route, Case> Refusals()
    {
        var data = new TheoryData<Route, Case>();
        foreach (var route in Routes)
        foreach (var c in Cases)
            if (SlotParam(route, c.Where) is not null || c.Where == Slot.Front) data.Add(route, c);
        return data;
    }

    private static string? SlotParam(Route route, Slot slot) => slot switch
    {
        Slot.String => route.StringParam,
        Slot.Integer => route.IntegerParam,
        Slot.Number => route.NumberParam,
        _ => null,
    };

    private static byte[] Body(Route route, Slot? slot = null, byte[]? value = null)
    {
        var text = route.Template;
        var body = new List<byte>();
        var i = 0;
        while (i < text.Length)
        {
            var start = text.IndexOf('%', i);
            if (start < 0)
            {
                body.AddRange(B(text[i..]));
                break;
            }
            var end = text.IndexOf('%', start + 1);
            body.AddRange(B(text[i..start]));
            var name = text[(start + 1)..end];
            var here = name switch { "P" => Slot.Front, "S" => Slot.String, "I" => Slot.Integer, _ => Slot.Number };
            body.AddRange(here == slot ? value! : B(here switch
            {
                Slot.Front => "",
                Slot.String => route.StringValue,
                Slot.Integer => route.IntegerValue!,
                _ => route.NumberValue!,
            }));
            i = end + 1;
        }
        return [.. body];
    }

    private Task<(int Status, string Text, HttpResponseMessage Response)> SendAsync(Route route, byte[] body) =>
        RawHttp.SendBytesAsync(route.Path.StartsWith("admin/", StringComparison.Ordinal) ? server.Admin : server.Running.Http,
            new HttpMethod(route.Method), route.Path, body);

    [Theory]
    [MemberData(nameof(AllRoutes))]
    public async Task EachRouteAcceptsItsBodyWithoutHostileValues(Route route)
    {
        var (status, text, _) = await SendAsync(route, Body(route));
        Assert.True(status is >= 200 and < 300, $"{route}: {status} {text}");
    }

    [Theory]
    [MemberData(nameof(AllRoutes))]
    public async Task NestingAtTheDepthLimitIsAccepted(Route route)
    {
        // The body is level 1, so 31 arrays inside it reach the limit of 32.
        var (status, text, _) = await SendAsync(route, Body(route, Slot.Front, B($"\"x\":{Nested(31)},")));
        Assert.True(status is >= 200 and < 300, $"{route}: {status} {text}");
    }

    public static TheoryData<Route> AllRoutes() => new(Routes);

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task HostileValueIsABadRequestNamingTheField(Route route, Case hostile)
    {
        var expected = hostile.Param ?? SlotParam(route, hostile.Where)!;

        var (status, text, _) = await SendAsync(route, Body(route, hostile.Where, hostile.Value));

        Assert.True(status == 400, $"{route} / {hostile}: expected 400, got {status}: {text}");
        var error = RawHttp.Error(JsonDocument.Parse(text).RootElement);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.String, error.GetProperty("code").ValueKind);
        var param = error.GetProperty("param").GetString();
        if (hostile.ParamIsPrefix) Assert.StartsWith(expected, param);
        else Assert.Equal(expected, param);
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
    }

    [Fact]
    public async Task DuplicateKeyOfTheRouteIsRefusedNamingIt()
    {
        foreach (var route in Routes)
        {
            var (status, text, _) = await SendAsync(route, Body(route, Slot.Front, B($"\"{route.DuplicateKey}\":{route.DuplicateValue},")));
            Assert.True(status == 400, $"{route}: expected 400, got {status}: {text}");
            var error = RawHttp.Error(JsonDocument.Parse(text).RootElement);
            Assert.Equal(route.DuplicateKey, error.GetProperty("param").GetString());
            Assert.Contains($"'{route.DuplicateKey}'", error.GetProperty("message").GetString());
        }
    }

    [Theory]
    [InlineData("load")]
    [InlineData("use")]
    public async Task ModelAdminBodiesAreReadAsStrictly(string action)
    {
        // Refused while the body is read, before the registry is asked about the model or version.
        foreach (var (body, param) in new (byte[], string)[]
        {
            (B("{\"version\":\"v", new byte[] { 0xFF }, "\"}"), "version"),
            (B("{\"version\":\"\\ud800\"}"), "version"),
            (B("{\"version\":\"v1\",\"version\":\"v2\"}"), "version"),
            (B("{\"version\":NaN}"), "version"),
            (B("{\"version\":7}"), "version"),
        })
        {
            var (status, text, _) = await RawHttp.SendBytesAsync(server.Admin, HttpMethod.Post, $"admin/models/test-model/{action}", body);
            Assert.True(status == 400, $"{action} {Encoding.UTF8.GetString(body)}: expected 400, got {status}: {text}");
            Assert.Equal(param, RawHttp.Error(JsonDocument.Parse(text).RootElement).GetProperty("param").GetString());
        }
    }
}
