using System.Text.Json;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>
/// Validates a <c>POST /v1/embeddings</c> body (stage 4): <c>input</c> as a string, an array of strings, an array
/// of token ids, or an array of token-id arrays; <c>encoding_format</c>; <c>dimensions</c> within what the model
/// was trained for; <c>user</c>. Token lengths are checked once the texts are tokenized (stage 6).
/// </summary>
public static class EmbeddingsParser
{
    public static EmbeddingsRequest Parse(JsonElement body, ModelCard model, EmbeddingSupport support, ApiLimits limits)
    {
        var f = new JsonFields(body, "");
        var inputs = Inputs(f, model, limits);
        var encoding = f.String("encoding_format", limits.MaxIdentifierLength) switch
        {
            null or "float" => EmbeddingEncoding.Float,
            "base64" => EmbeddingEncoding.Base64,
            var other => throw ApiException.Invalid("encoding_format", $"encoding_format must be 'float' or 'base64'; got '{other}'."),
        };
        return new EmbeddingsRequest
        {
            Model = model.Id,
            Inputs = inputs,
            Encoding = encoding,
            Dimensions = Dimensions(f, model, support),
            User = f.String("user", limits.MaxIdentifierLength),
        };
    }

    /// <summary>
    /// A shorter vector only from a model trained to be cut (Matryoshka): its first <c>dimensions</c> values, made unit
    /// length again. Any other model takes only its own width, since its leading values alone mean nothing.
    /// </summary>
    private static int? Dimensions(JsonFields f, ModelCard model, EmbeddingSupport support)
    {
        if (f.Integer("dimensions", 1, int.MaxValue) is not { } asked) return null;
        if (asked > support.Dimensions)
            throw ApiException.Invalid("dimensions", $"dimensions must be at most {support.Dimensions}, the width of '{model.Id}''s embeddings; got {asked}.");
        if (asked < support.MinDimensions)
            throw ApiException.Invalid("dimensions", support.MinDimensions == support.Dimensions
                ? $"'{model.Id}' was not trained for shortened embeddings (Matryoshka), so dimensions must be its width {support.Dimensions}; got {asked}."
                : $"dimensions must be between {support.MinDimensions} and {support.Dimensions} for '{model.Id}'; got {asked}.");
        return (int)asked;
    }

    private static IReadOnlyList<PromptInput> Inputs(JsonFields f, ModelCard model, ApiLimits limits)
    {
        var value = f.Get("input") ?? throw ApiException.Invalid("input", "input is required.", "missing_required_parameter");
        if (value.ValueKind == JsonValueKind.String)
            return [PromptInput.FromText(Text(value, "input", limits.MaxPromptCharacters))];
        if (value.ValueKind != JsonValueKind.Array) throw ApiException.WrongType("input", "a string or an array", JsonFields.Kind(value));
        var count = value.GetArrayLength();
        if (count == 0) throw ApiException.Invalid("input", "input must not be an empty array.", "array_below_min_length");
        var first = value[0];
        // An array of numbers is one input given as token ids.
        if (first.ValueKind == JsonValueKind.Number)
            return [PromptInput.FromTokens(Tokens(value, "input", model))];
        if (count > limits.MaxEmbeddingInputs)
            throw ApiException.Invalid("input", $"input must have at most {limits.MaxEmbeddingInputs} items; got {count}.", "array_above_max_length");
        var inputs = new PromptInput[count];
        var characters = 0L;
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            var path = $"input[{i}]";
            if (item.ValueKind != first.ValueKind || item.ValueKind is not (JsonValueKind.String or JsonValueKind.Array))
                throw ApiException.Invalid(path, $"{path} must be {(first.ValueKind == JsonValueKind.Array ? "an array of token ids" : "a string")} like input[0]; got {JsonFields.Kind(item)}.", "invalid_type");
            if (item.ValueKind == JsonValueKind.String)
            {
                var text = Text(item, path, limits.MaxPromptCharacters);
                if ((characters += text.Length) > limits.MaxPromptCharacters)
                    throw ApiException.Invalid("input", $"input must hold at most {limits.MaxPromptCharacters} characters in all; got more by {path}.", "string_above_max_length");
                inputs[i++] = PromptInput.FromText(text);
            }
            else
                inputs[i++] = PromptInput.FromTokens(Tokens(item, path, model));
        }
        return inputs;
    }

    private static string Text(JsonElement value, string path, int maxLength)
    {
        var text = value.GetString()!;
        if (text.Length == 0) throw ApiException.Invalid(path, $"{path} must not be an empty string.", "string_below_min_length");
        if (text.Length > maxLength)
            throw ApiException.Invalid(path, $"{path} must be at most {maxLength} characters; got {text.Length}.", "string_above_max_length");
        return text;
    }

    private static int[] Tokens(JsonElement array, string path, ModelCard model)
    {
        var length = array.GetArrayLength();
        if (length == 0) throw ApiException.Invalid(path, $"{path} must hold at least one token id.", "array_below_min_length");
        if (length > model.ContextLimit)
            throw EmbeddingsRequest.ContextExceeded(path, model.ContextLength, length);
        return TextCompletionParser.TokenIds(array, path, model.VocabularyLimit);
    }
}
