using System.Text;
using System.Text.Json;
using Bulwark.Server.Api;
using Bulwark.Server.Backends.Upstream;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>The embeddings request Bulwark sends an OpenAI-protocol upstream, and the checks on what comes back.</summary>
public sealed class OpenAiEmbeddingsWireTests
{
    [Fact]
    public void TheBodyCarriesTheInputsAsAnArrayAndWhatTheClientAsked()
    {
        var request = new EmbeddingsRequest { Model = "served", Inputs = [PromptInput.FromText("a"), PromptInput.FromText("b")], Encoding = EmbeddingEncoding.Base64, Dimensions = 64, User = "u1" };
        var body = JsonDocument.Parse(OpenAiEmbeddingsWire.Body(request, "upstream-name")).RootElement;
        Assert.Equal("""{"model":"upstream-name","input":["a","b"],"encoding_format":"base64","dimensions":64,"user":"u1"}""", body.GetRawText());
        var ids = new EmbeddingsRequest { Model = "served", Inputs = [PromptInput.FromTokens([1, 2]), PromptInput.FromTokens([3])] };
        Assert.Equal("""{"model":"m","input":[[1,2],[3]],"encoding_format":"float"}""", Encoding.UTF8.GetString(OpenAiEmbeddingsWire.Body(ids, "m")));
    }

    private static string Response(params string[] embeddings) =>
        "{\"object\":\"list\",\"data\":[" + string.Join(",", embeddings.Select((e, i) => $"{{\"object\":\"embedding\",\"index\":{i},\"embedding\":{e}}}")) + "],\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7}}";

    [Fact]
    public void FloatAndBase64VectorsAreReadInIndexOrderWithTheUpstreamsTokenCount()
    {
        var base64 = "\"" + EmbeddingsEndpoint.Base64([0.5f, -0.25f]) + "\"";
        var body = """{"data":[{"index":1,"embedding":[1.5,2]},{"index":0,"embedding":BASE}]}""".Replace("BASE", base64);
        var (vectors, tokens) = OpenAiEmbeddingsWire.Read(Encoding.UTF8.GetBytes(body), 2, null);
        Assert.Equal([0.5f, -0.25f], vectors[0]);
        Assert.Equal([1.5f, 2f], vectors[1]);
        Assert.Null(tokens);
        Assert.Equal(7, OpenAiEmbeddingsWire.Read(Encoding.UTF8.GetBytes(Response("[1]")), 1, 1).PromptTokens);
    }

    [Theory]
    [InlineData(2, null, "[1,2]", "sent 1 embeddings for 2 inputs")]
    [InlineData(1, null, "[]", "has 0 values")]
    [InlineData(1, 3, "[1,2]", "has 2 values where 3 were expected")]
    [InlineData(1, null, "[1,\"x\"]", "not a number")]
    [InlineData(1, null, "{}", "neither an array nor base64")]
    [InlineData(1, null, "\"AAAAAA==\"", null)]
    [InlineData(1, null, "\"AAA\"", "not base64")]
    [InlineData(1, null, "\"AAAA\"", "whole number of float32")]
    [InlineData(1, null, "\"AADAfw==\"", "not finite")]
    public void AResponseThatIsNotWhatWasAskedIsRefusedSayingHow(int inputs, int? dimensions, string embedding, string? error)
    {
        var body = Encoding.UTF8.GetBytes(Response(embedding));
        if (error is null)
        {
            Assert.Single(OpenAiEmbeddingsWire.Read(body, inputs, dimensions).Vectors);
            return;
        }
        Assert.Contains(error, Assert.Throws<InvalidDataException>(() => OpenAiEmbeddingsWire.Read(body, inputs, dimensions)).Message);
    }

    [Fact]
    public void VectorsOfDifferentWidthsOrARepeatedIndexAreRefused()
    {
        Assert.Contains("has 1 values where 2", Assert.Throws<InvalidDataException>(() => OpenAiEmbeddingsWire.Read(Encoding.UTF8.GetBytes(Response("[1,2]", "[3]")), 2, null)).Message);
        var repeated = """{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}""";
        Assert.Contains("index 0", Assert.Throws<InvalidDataException>(() => OpenAiEmbeddingsWire.Read(Encoding.UTF8.GetBytes(repeated), 2, null)).Message);
        Assert.Contains("no data array", Assert.Throws<InvalidDataException>(() => OpenAiEmbeddingsWire.Read("""{"error":{"message":"x"}}"""u8, 1, null)).Message);
    }
}
