using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// <c>/v1/embeddings</c> as Bulwark speaks it to an OpenAI-compatible upstream: the request's inputs as an array (of
/// strings, or of token-id arrays), the encoding and width the client asked for; and the response read back and
/// checked before anything reaches the client: one vector per input (each index once), all of one width, that width
/// the one asked for, every value a finite number, from a JSON array or OpenAI's base64 of little-endian float32.
/// </summary>
internal static class OpenAiEmbeddingsWire
{
    public const string Path = "embeddings";

    public static byte[] Body(EmbeddingsRequest request, string upstreamModel)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("model", upstreamModel);
            json.WriteStartArray("input");
            foreach (var input in request.Inputs)
            {
                if (input.TokenIds is { } ids)
                {
                    json.WriteStartArray();
                    foreach (var id in ids) json.WriteNumberValue(id);
                    json.WriteEndArray();
                }
                else json.WriteStringValue(input.Text);
            }
            json.WriteEndArray();
            // base64 is a third of the bytes of a float array, and what the client gets either way is written by the route.
            json.WriteString("encoding_format", request.Encoding == EmbeddingEncoding.Base64 ? "base64" : "float");
            if (request.Dimensions is { } dimensions) json.WriteNumber("dimensions", dimensions);
            if (request.User is { } user) json.WriteString("user", user);
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The vectors in input order, and the upstream's <c>usage.prompt_tokens</c> (null when it sent none).</summary>
    /// <exception cref="InvalidDataException">The response is not what was asked for (the message says how).</exception>
    public static (float[][] Vectors, int? PromptTokens) Read(ReadOnlySpan<byte> utf8, int inputs, int? dimensions)
    {
        var reader = new Utf8JsonReader(utf8);
        using var document = JsonDocument.ParseValue(ref reader);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException("the upstream's embeddings response has no data array");
        if (data.GetArrayLength() != inputs)
            throw new InvalidDataException($"the upstream sent {data.GetArrayLength()} embeddings for {inputs} inputs");
        var vectors = new float[inputs][];
        var position = 0;
        foreach (var item in data.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("embedding", out var embedding))
                throw new InvalidDataException($"the upstream's embedding {position} has no embedding");
            var index = item.TryGetProperty("index", out var i) ? (i.TryGetInt32(out var n) ? n : -1) : position;
            if ((uint)index >= (uint)inputs || vectors[index] is not null)
                throw new InvalidDataException($"the upstream sent embedding index {index} for {inputs} inputs");
            var vector = Vector(embedding);
            var width = dimensions ?? vectors.FirstOrDefault(v => v is not null)?.Length ?? vector.Length;
            if (vector.Length == 0 || vector.Length != width)
                throw new InvalidDataException($"the upstream's embedding {index} has {vector.Length} values where {width} were expected");
            vectors[index] = vector;
            position++;
        }
        int? tokens = root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object
            && usage.TryGetProperty("prompt_tokens", out var p) && p.TryGetInt32(out var prompt) && prompt >= 0 ? prompt : null;
        return (vectors, tokens);
    }

    private static float[] Vector(JsonElement embedding)
    {
        float[] vector;
        if (embedding.ValueKind == JsonValueKind.String)
        {
            byte[] bytes;
            try
            {
                bytes = embedding.GetBytesFromBase64();
            }
            catch (FormatException)
            {
                throw new InvalidDataException("the upstream's base64 embedding is not base64");
            }
            if (bytes.Length % sizeof(float) != 0) throw new InvalidDataException("the upstream's base64 embedding is not a whole number of float32 values");
            vector = new float[bytes.Length / sizeof(float)];
            for (var i = 0; i < vector.Length; i++) vector[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * sizeof(float)));
        }
        else if (embedding.ValueKind == JsonValueKind.Array)
        {
            vector = new float[embedding.GetArrayLength()];
            var i = 0;
            foreach (var x in embedding.EnumerateArray())
                vector[i++] = x.ValueKind == JsonValueKind.Number && x.TryGetSingle(out var f) ? f : throw new InvalidDataException("the upstream's embedding holds a value that is not a number");
        }
        else throw new InvalidDataException("the upstream's embedding is neither an array nor base64");
        foreach (var x in vector)
            if (!float.IsFinite(x)) throw new InvalidDataException("the upstream's embedding holds a value that is not finite");
        return vector;
    }
}
