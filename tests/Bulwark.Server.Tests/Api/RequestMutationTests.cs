using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Api;

/// <summary>
/// A property of every JSON route, through a real server with the real engine (the alphabet model:
/// its tokenizer, chat template and sampler) and the input guard blocking: valid requests, each
/// mutated at random (bytes flipped, cut short, invalid UTF-8 or a lone surrogate put in, values
/// swapped for other types, huge numbers or NaN, keys repeated, values buried in deep nesting,
/// fields removed), never get a 5xx, and every refusal is a well-formed OpenAI error body — on TGI's
/// routes too, which use OpenAI's shape (<c>TgiGenerateEndpoint</c>). A stream that started may end
/// only with an error event of the same shape.
/// </summary>
public sealed class RequestMutationTests(RequestMutationTests.Server server) : IClassFixture<RequestMutationTests.Server>
{
    private const int Seed = 21;
    private const int Requests = 400;

    public sealed class Server : IAsyncLifetime
    {
        private Bulwark.Server.Backends.Embedded.EmbeddedBackend _backend = null!;

        public RunningServer Running { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            _backend = AlphabetModel.Backend();
            Running = await RunningServer.StartAsync(_backend, new()
            {
                ["Bulwark:Guardrails:Input:Policy"] = "block",
                ["Bulwark:Limits:MaxTokens"] = "12",
                ["Bulwark:Limits:MaxChoices"] = "2",
            });
        }

        public async Task DisposeAsync()
        {
            await Running.DisposeAsync();
            _backend.Dispose();
        }
    }

    /// <summary>Real requests a client sends, each valid as it stands (the first assertion of the test).</summary>
    private static readonly (string Path, string Json)[] ValidRequests =
    [
        ("v1/chat/completions", """{"model":"alphabet","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hello there"}],"max_tokens":4,"temperature":0}"""),
        ("v1/chat/completions", """{"model":"alphabet","messages":[{"role":"user","content":[{"type":"text","text":"part one"},{"type":"text","text":" part two"}],"name":"ann"}],"max_completion_tokens":3,"top_p":0.9,"top_k":5,"seed":7,"user":"u-1","frequency_penalty":0.5,"logit_bias":{"8":2}}"""),
        ("v1/chat/completions", """{"model":"alphabet","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream please"}],"max_tokens":4,"n":2,"logprobs":true,"top_logprobs":2,"stop":["q","zz"],"temperature":0.7,"seed":3}"""),
        ("v1/chat/completions", """{"model":"alphabet","messages":[{"role":"user","content":"json"}],"max_tokens":3,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":["integer","null"]},"b":{"enum":[1,"two"]}},"required":["a"],"additionalProperties":false}}}}"""),
        ("v1/completions", """{"model":"alphabet","prompt":"abc","max_tokens":4,"temperature":0,"stop":"x"}"""),
        ("v1/completions", """{"model":"alphabet","prompt":[[1,8,9,10]],"max_tokens":3,"logprobs":2,"n":2,"best_of":2,"seed":11,"presence_penalty":-0.5,"repetition_penalty":1.1,"min_p":0.05}"""),
        ("v1/completions", """{"model":"alphabet","stream":true,"prompt":["count with me"],"max_tokens":5,"stream_options":{"include_usage":true}}"""),
        ("tokenize", """{"model":"alphabet","prompt":"hello world","add_special_tokens":false}"""),
        ("tokenize", """{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ab"}]}"""),
        ("detokenize", """{"model":"alphabet","tokens":[1,104,105,7]}"""),
        ("generate", """{"inputs":"abc","parameters":{"max_new_tokens":4,"details":true,"stop":["q"],"seed":3,"temperature":0.5,"top_k":5,"return_full_text":true}}"""),
        ("generate", """{"inputs":"plain"}"""),
        ("generate_stream", """{"inputs":"stream","parameters":{"max_new_tokens":3,"do_sample":true,"top_p":0.8,"repetition_penalty":1.2,"best_of":1,"watermark":false}}"""),
    ];

    private static readonly string[] RawTokens =
    [
        "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "99999999999999999999", "-99999999999999999999", "1e-400", "0.0000001",
        "9223372036854775808", "2147483648", "-0", "1E5", "\"\\ud800\"", "\"a\\udc00\"", "\"\\ud83d\\ude00\"", "tru", "nul", "01", "1.",
    ];

    private static readonly byte[][] BadBytes = [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF8, 0x88, 0x80, 0x80, 0x80], [0x80], [0x00], [0x1F]];

    private static readonly Func<JsonNode?>[] OtherValues =
    [
        () => null, () => true, () => false, () => 0, () => -1, () => 1.5, () => 100000, () => "", () => "x", () => new string('y', 3000),
        () => new JsonArray(), () => new JsonObject(), () => new JsonArray(1, "a", null), () => new JsonObject { ["type"] = "text" },
    ];

    [Fact]
    public async Task MutatedRequestsNeverGetAServerErrorAndEveryRefusalIsWellFormed()
    {
        foreach (var (path, json) in ValidRequests)
        {
            var (status, text) = await SendAsync(path, Encoding.UTF8.GetBytes(json));
            Assert.True(status == 200, $"the valid request {path} {json} got {status}: {text}");
        }

        var random = new Random(Seed);
        var refused = 0;
        for (var i = 0; i < Requests; i++)
        {
            var (path, json) = ValidRequests[random.Next(ValidRequests.Length)];
            var (body, mutations) = Mutate(json, random);
            string? problem;
            int status;
            string text;
            try
            {
                (status, text) = await SendAsync(path, body);
                problem = Problem(status, text);
            }
            catch (HttpRequestException e)
            {
                (status, text, problem) = (0, "", $"the connection failed: {e.Message}");
            }
            if (status is >= 400) refused++;
            Assert.True(problem is null,
                $"seed {Seed}, request {i}: {problem}\nPOST /{path} after {string.Join(", ", mutations)}\n" +
                $"body (UTF-8, invalid bytes as U+FFFD): {Encoding.UTF8.GetString(body)}\nbody (hex): {Convert.ToHexString(body)}\nresponse {status}: {text}");
        }
        // The mutations must make refusals, or the shape of a refusal was never checked.
        Assert.True(refused > Requests / 3, $"only {refused} of {Requests} mutated requests were refused");
    }

    private async Task<(int Status, string Text)> SendAsync(string path, byte[] body)
    {
        var (status, text, response) = await RawHttp.SendBytesAsync(server.Running.Http, HttpMethod.Post, path, body);
        response.Dispose();
        return (status, text);
    }

    /// <summary>What is wrong with a response, or null.</summary>
    private static string? Problem(int status, string text)
    {
        if (status >= 500) return $"a server error ({status})";
        if (status is >= 200 and < 300)
        {
            if (!text.StartsWith("data: ", StringComparison.Ordinal)) return null;
            // A stream: every event is JSON or [DONE]; an error event (a refusal after the headers) has the error shape.
            foreach (var data in RawHttp.Events(text))
            {
                if (data == "[DONE]") continue;
                using var chunk = JsonDocument.Parse(data);
                if (chunk.RootElement.TryGetProperty("error", out _) && ErrorShapeProblem(chunk.RootElement) is { } p) return $"stream error event: {p}";
            }
            return null;
        }
        try
        {
            using var document = JsonDocument.Parse(text);
            return ErrorShapeProblem(document.RootElement);
        }
        catch (JsonException)
        {
            return "the refusal's body is not JSON";
        }
    }

    private static string? ErrorShapeProblem(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object)
            return "no error object";
        var names = error.EnumerateObject().Select(p => p.Name).ToArray();
        if (!names.SequenceEqual(["message", "type", "param", "code"])) return $"the error has the fields {string.Join(", ", names)}";
        if (error.GetProperty("message") is not { ValueKind: JsonValueKind.String } message || message.GetString()!.Length == 0) return "no message";
        if (error.GetProperty("type").ValueKind != JsonValueKind.String) return "no type";
        foreach (var field in new[] { "param", "code" })
            if (error.GetProperty(field).ValueKind is not (JsonValueKind.String or JsonValueKind.Null)) return $"{field} is neither a string nor null";
        return null;
    }

    /// <summary>One to three mutations of the tree (written by hand, so a key can appear twice), then perhaps of the bytes.</summary>
    private static (byte[] Body, List<string> Mutations) Mutate(string json, Random random)
    {
        var root = JsonNode.Parse(json)!;
        var raw = new List<byte[]>();
        var mutations = new List<string>();
        (JsonObject Object, string Key)? duplicate = null;
        for (var n = random.Next(1, 4); n > 0; n--)
        {
            var nodes = Nodes(root).ToList();
            var (node, path) = nodes[random.Next(nodes.Count)];
            switch (random.Next(7))
            {
                case 0 when node?.Parent is not null:
                    Replace(node, OtherValues[random.Next(OtherValues.Length)]());
                    mutations.Add($"{path} := another type");
                    break;
                case 1 when node?.Parent is not null:
                    var token = RawTokens[random.Next(RawTokens.Length)];
                    Replace(node, Placeholder(raw, Encoding.UTF8.GetBytes(token)));
                    mutations.Add($"{path} := {token}");
                    break;
                case 2 when node?.Parent is JsonObject parent:
                    parent.Remove(node.GetPropertyName());
                    mutations.Add($"{path} removed");
                    break;
                case 3 when node?.Parent is JsonObject parent:
                    duplicate = (parent, node.GetPropertyName());
                    mutations.Add($"{path} written twice");
                    break;
                case 4 when node?.Parent is not null:
                    var depth = random.Next(1, 40);
                    var wrapped = node.DeepClone();
                    for (var d = 0; d < depth; d++) wrapped = random.Next(2) == 0 ? new JsonArray(wrapped) : new JsonObject { ["a"] = wrapped };
                    Replace(node, wrapped);
                    mutations.Add($"{path} nested {depth} deep");
                    break;
                case 5 when node is JsonValue value && value.GetValueKind() == JsonValueKind.String:
                    var text = value.GetValue<string>();
                    var at = random.Next(text.Length + 1);
                    var bad = BadBytes[random.Next(BadBytes.Length)];
                    Replace(node, Placeholder(raw, [.. Encoding.UTF8.GetBytes(JsonSerializer.Serialize(text[..at]))[..^1], .. bad, .. Encoding.UTF8.GetBytes(JsonSerializer.Serialize(text[at..]))[1..]]));
                    mutations.Add($"{path} holds bytes {Convert.ToHexString(bad)}");
                    break;
                default:
                    mutations.Add("(nothing)");
                    break;
            }
        }
        var body = Write(root, duplicate, raw);
        switch (random.Next(6))
        {
            case 0:
                var flip = random.Next(body.Length);
                body[flip] ^= (byte)(1 << random.Next(8));
                mutations.Add($"bit flipped at byte {flip}");
                break;
            case 1:
                var cut = random.Next(body.Length);
                body = body[..cut];
                mutations.Add($"cut to {cut} bytes");
                break;
            case 2:
                var insert = random.Next(body.Length + 1);
                var bad = BadBytes[random.Next(BadBytes.Length)];
                body = [.. body[..insert], .. bad, .. body[insert..]];
                mutations.Add($"bytes {Convert.ToHexString(bad)} put in at {insert}");
                break;
        }
        return (body, mutations);
    }

    /// <summary>A string that <see cref="Write"/> replaces with raw bytes no tree can hold (NaN, invalid UTF-8).</summary>
    private static JsonNode Placeholder(List<byte[]> raw, byte[] bytes)
    {
        raw.Add(bytes);
        return JsonValue.Create($"@@raw{raw.Count - 1}@@")!;
    }

    private static void Replace(JsonNode node, JsonNode? with)
    {
        switch (node.Parent)
        {
            case JsonObject o:
                o[node.GetPropertyName()] = with;
                break;
            case JsonArray a:
                a[node.GetElementIndex()] = with;
                break;
        }
    }

    private static IEnumerable<(JsonNode? Node, string Path)> Nodes(JsonNode? node, string path = "body")
    {
        yield return (node, path);
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o.ToList())
                foreach (var inner in Nodes(value, path == "body" ? key : $"{path}.{key}")) yield return inner;
                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++)
                foreach (var inner in Nodes(a[i], $"{path}[{i}]")) yield return inner;
                break;
        }
    }

    private static byte[] Write(JsonNode root, (JsonObject Object, string Key)? duplicate, List<byte[]> raw)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true, MaxDepth = 1000 }))
            WriteNode(json, root, duplicate);
        var text = buffer.ToArray();
        for (var i = 0; i < raw.Count; i++)
        {
            var marker = Encoding.UTF8.GetBytes($"\"@@raw{i}@@\"");
            var at = text.AsSpan().IndexOf(marker);
            if (at >= 0) text = [.. text[..at], .. raw[i], .. text[(at + marker.Length)..]];
        }
        return text;
    }

    private static void WriteNode(Utf8JsonWriter json, JsonNode? node, (JsonObject Object, string Key)? duplicate)
    {
        switch (node)
        {
            case JsonObject o:
                json.WriteStartObject();
                foreach (var (key, value) in o)
                {
                    var times = duplicate is { } d && ReferenceEquals(d.Object, o) && d.Key == key ? 2 : 1;
                    for (var t = 0; t < times; t++)
                    {
                        json.WritePropertyName(key);
                        WriteNode(json, value, duplicate);
                    }
                }
                json.WriteEndObject();
                break;
            case JsonArray a:
                json.WriteStartArray();
                foreach (var item in a) WriteNode(json, item, duplicate);
                json.WriteEndArray();
                break;
            case null:
                json.WriteNullValue();
                break;
            default:
                node.WriteTo(json);
                break;
        }
    }
}
