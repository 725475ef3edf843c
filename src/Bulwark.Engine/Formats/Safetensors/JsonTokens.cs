using System.Text.Json;

namespace Bulwark.Engine.Formats.Safetensors;

/// <summary>Token steps over <see cref="Utf8JsonReader"/> that turn every surprise into a <see cref="ModelFormatException"/>.</summary>
internal static class JsonTokens
{
    public static JsonTokenType Next(ref Utf8JsonReader reader, string file, string field)
    {
        if (!reader.Read()) throw new ModelFormatException(file, field, "the JSON ends early");
        return reader.TokenType;
    }

    /// <summary>
    /// The current string token. The tokenizer does not validate UTF-8 inside strings; decoding
    /// does, and invalid bytes are refused here. <paramref name="baseOffset"/> turns the reader's
    /// position into a file offset.
    /// </summary>
    public static string Text(ref Utf8JsonReader reader, string file, string field, long baseOffset = 0)
    {
        try
        {
            return reader.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw new ModelFormatException(file, field, $"is not valid UTF-8 text (at byte {reader.TokenStartIndex + baseOffset})", e);
        }
    }
}
