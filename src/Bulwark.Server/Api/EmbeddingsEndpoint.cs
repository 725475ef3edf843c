using System.Buffers.Binary;
using System.Text.Json;
using Bulwark.Engine.Model;
using Bulwark.Server.Requests;
using Bulwark.Server.Spine;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// <c>POST /v1/embeddings</c>: OpenAI's wire format around the spine's embedding path. Each vector is unit length;
/// <c>dimensions</c> keeps its first values and makes them unit length again; <c>encoding_format: base64</c> sends
/// the float32 values little-endian, as OpenAI does.
/// </summary>
public sealed class EmbeddingsEndpoint(GenerationSpine spine, ApiLimits limits)
{
    public async Task HandleAsync(HttpContext context)
    {
        var body = await JsonBody.ReadAsync(context, limits);
        await spine.EmbedAsync(context, body, root => ModelField.Name(root, limits),
            (root, model, support) => EmbeddingsParser.Parse(root, model, support, limits),
            limits.MaxEmbeddingTokens,
            async (request, vectors, tokens) =>
            {
                context.RequestAborted.ThrowIfCancellationRequested();
                context.Response.ContentType = "application/json";
                await using var json = new Utf8JsonWriter(context.Response.BodyWriter);
                Write(json, request, vectors, tokens);
            });
    }

    private static void Write(Utf8JsonWriter json, EmbeddingsRequest request, float[][] vectors, int tokens)
    {
        json.WriteStartObject();
        json.WriteString("object", "list");
        json.WriteStartArray("data");
        for (var i = 0; i < vectors.Length; i++)
        {
            var vector = Shorten(vectors[i], request.Dimensions);
            json.WriteStartObject();
            json.WriteString("object", "embedding");
            json.WriteNumber("index", i);
            if (request.Encoding == EmbeddingEncoding.Base64)
                json.WriteString("embedding", Base64(vector));
            else
            {
                json.WriteStartArray("embedding");
                foreach (var x in vector) json.WriteNumberValue(x);
                json.WriteEndArray();
            }
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteString("model", request.Model);
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", tokens);
        json.WriteNumber("total_tokens", tokens);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>The first <paramref name="dimensions"/> values, unit length again (Matryoshka truncation); the vector itself when no shorter width is asked.</summary>
    public static float[] Shorten(float[] vector, int? dimensions)
    {
        if (dimensions is not { } d || d >= vector.Length) return vector;
        var shorter = vector[..d];
        EmbeddingVector.NormalizeL2(shorter);
        return shorter;
    }

    /// <summary>float32 values as little-endian bytes in base64, what OpenAI's SDKs decode.</summary>
    public static string Base64(ReadOnlySpan<float> vector)
    {
        var bytes = new byte[vector.Length * sizeof(float)];
        for (var i = 0; i < vector.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), vector[i]);
        return Convert.ToBase64String(bytes);
    }
}
