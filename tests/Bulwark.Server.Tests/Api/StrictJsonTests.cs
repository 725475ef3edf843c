using System.Text;
using System.Text.Json;
using Bulwark.Server.Api;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Tests.Api;

/// <summary>
/// <see cref="StrictJson"/> against the obvious, slow oracle: parse with <see cref="JsonDocument"/> and
/// call <c>GetString</c> on every string and property name. Whatever the oracle can read the check
/// accepts, and whatever makes the oracle throw the check refuses — on random strings built from
/// escapes, surrogate halves and broken UTF-8.
/// </summary>
public sealed class StrictJsonTests
{
    private const int Seed = 20260611;

    /// <summary>Pieces of a JSON string's raw bytes that decode: text and every kind of escape.</summary>
    private static readonly byte[][] Sound =
    [
        .. new[]
        {
            "a", "Z", " ", "é", "😀", "\\n", "\\\"", "\\\\", "\\/", "\\t", "\\u0041", "\\u00e9", "\\u0000", "\\uFFFF",
            "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\uDBFF\\uDFFF", "u", "d800",
        }.Select(Encoding.UTF8.GetBytes),
        [0xEF, 0xBF, 0xBD],
    ];

    /// <summary>Pieces that do not: surrogate halves alone or out of order, and each way to break UTF-8.</summary>
    private static readonly byte[][] Broken =
    [
        .. new[] { "\\ud800", "\\udc00", "\\uDFFF", "\\ud800\\u0041", "\\ud800\\n", "\\ud800\\ud800", "\\uDc00", "\\ud83d\\ude00\\ud83d" }.Select(Encoding.UTF8.GetBytes),
        [0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80], [0x80], [0xF0, 0x9F, 0x98],
    ];

    private static byte[] RandomString(Random random)
    {
        var bytes = new List<byte>();
        for (var n = random.Next(0, 5); n > 0; n--)
        {
            var pieces = random.Next(12) == 0 ? Broken : Sound;
            bytes.AddRange(pieces[random.Next(pieces.Length)]);
        }
        return [.. bytes];
    }

    private static bool OracleReads(byte[] body, bool allowDuplicates)
    {
        try
        {
            using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = StrictJson.MaxDepth, AllowDuplicateProperties = allowDuplicates });
            ReadAll(document.RootElement);
            return true;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return false;
        }
    }

    private static void ReadAll(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    _ = p.Name;
                    ReadAll(p.Value);
                }
                break;
            case JsonValueKind.Array:
                foreach (var item in e.EnumerateArray()) ReadAll(item);
                break;
            case JsonValueKind.String:
                _ = e.GetString();
                break;
        }
    }

    private static bool CheckAccepts(byte[] body, bool findDuplicates)
    {
        try
        {
            StrictJson.Check(body, findDuplicates);
            return true;
        }
        catch (ApiException e)
        {
            Assert.Equal(400, e.Status);
            Assert.NotNull(e.Param);
            return false;
        }
    }

    [Fact]
    public void AcceptsExactlyTheStringsAndNamesTheOracleCanRead()
    {
        var random = new Random(Seed);
        var (accepted, refused) = (0, 0);
        for (var i = 0; i < 5000; i++)
        {
            var key = RandomString(random);
            var value = RandomString(random);
            byte[] body = [.. "{\"k"u8, .. key, .. "\":[\""u8, .. value, .. "\"],\"k"u8, .. RandomString(random), .. "\":1}"u8];

            foreach (var duplicates in new[] { false, true })
            {
                var reads = OracleReads(body, allowDuplicates: !duplicates);
                Assert.True(reads == CheckAccepts(body, duplicates),
                    $"seed {Seed}, case {i}, findDuplicates {duplicates}: body {Convert.ToHexString(body)} ({Encoding.UTF8.GetString(body)})");
                if (reads) accepted++; else refused++;
            }
        }
        // Both answers are common, so neither half of the rule goes untested.
        Assert.True(accepted > 2000 && refused > 2000, $"accepted {accepted}, refused {refused}");
    }

    [Theory]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"a\ud800"}]}""", "messages[0].content", "invalid_encoding")]
    [InlineData("""{"a":[1,"\udc00"]}""", "a[1]", "invalid_encoding")]
    [InlineData("""{"a":{"\ud800":1}}""", "a", "invalid_encoding")]
    [InlineData("""{"\ud800":1}""", "body", "invalid_encoding")]
    [InlineData("""{"temperature":NaN}""", "temperature", "invalid_json")]
    [InlineData("""{"a":[1,2,Infinity]}""", "a[2]", "invalid_json")]
    [InlineData("""{"a":{"b":[{"c":-Infinity}]}}""", "a.b[0].c", "invalid_json")]
    [InlineData("""{"a":1,}""", "body", "invalid_json")]
    [InlineData("""{"a":{"b":1,}}""", "a", "invalid_json")]
    [InlineData("""{"a":[1,""", "a[1]", "invalid_json")]
    [InlineData("""{"a":""", "a", "invalid_json")]
    [InlineData("", "body", "invalid_json")]
    [InlineData("{} {}", "body", "invalid_json")]
    [InlineData("""{"a":1,"a":2}""", "a", "duplicate_key")]
    [InlineData("""{"m":[{"x":1},{"x":1,"y":2,"\u0078":3}]}""", "m[1].x", "duplicate_key")]
    public void RefusalNamesThePathOfTheField(string json, string param, string code)
    {
        var error = Assert.Throws<ApiException>(() => StrictJson.Check(Encoding.UTF8.GetBytes(json), findDuplicates: true));

        Assert.Equal(param, error.Param);
        Assert.Equal(code, error.Code);
        Assert.Equal("invalid_request_error", error.Type);
    }

    [Fact]
    public void DuplicatesInSeparateObjectsAreNotDuplicates()
    {
        StrictJson.Check("""{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":1}],"x":1}"""u8, findDuplicates: true);
    }

    [Fact]
    public void ALongKeyIsCutInThePath()
    {
        var key = new string('k', 1000);
        var error = Assert.Throws<ApiException>(() => StrictJson.Check(Encoding.UTF8.GetBytes($$"""{"{{key}}":"\ud800"}""")));

        Assert.Equal(new string('k', 64) + "...", error.Param);
        Assert.True(error.Message.Length < 400, error.Message);
    }

    [Theory]
    [InlineData(StrictJson.MaxDepth, true)]
    [InlineData(StrictJson.MaxDepth + 1, false)]
    public void NestingIsLimited(int depth, bool accepted)
    {
        var json = Encoding.UTF8.GetBytes(new string('[', depth) + new string(']', depth));
        Assert.Equal(accepted, CheckAccepts(json, findDuplicates: false));
    }

    [Fact]
    public void JsonBodyNamesADuplicateTheDocumentFound()
    {
        var error = Assert.Throws<ApiException>(() => JsonBody.Parse("""{"model":"m","messages":[{"role":"user","role":"system"}]}"""u8.ToArray()));

        Assert.Equal("messages[0].role", error.Param);
        Assert.Equal("duplicate_key", error.Code);
        Assert.Contains("'role'", error.Message);
    }
}
