using System.Text.Json;

namespace Bulwark.Cli.GuardTraining;

/// <summary>One line of an evaluation or training file: <c>{"text": ..., "label": 0|1, "source"?: ...}</c>; label 1 is an attack.</summary>
public sealed record LabeledText(string Text, bool IsAttack, string Source)
{
    /// <summary>Reads a JSON Lines file; blank lines are skipped, anything else malformed is an error naming the line.</summary>
    public static List<LabeledText> ReadJsonLines(string path)
    {
        var rows = new List<LabeledText>();
        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            rows.Add(Parse(line, $"{path}:{number}"));
        }
        return rows;
    }

    public static LabeledText Parse(string line, string where)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new FormatException($"{where}: each line must be a JSON object");
            if (!root.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                throw new FormatException($"{where}: field 'text' must be a string");
            if (!root.TryGetProperty("label", out var label) || label.ValueKind != JsonValueKind.Number || !label.TryGetInt32(out var value) || value is not (0 or 1))
                throw new FormatException($"{where}: field 'label' must be 0 or 1; got {(root.TryGetProperty("label", out var l) ? l.GetRawText() : "nothing")}");
            var source = root.TryGetProperty("source", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "";
            return new LabeledText(text.GetString()!, value == 1, source);
        }
        catch (JsonException e)
        {
            throw new FormatException($"{where}: not valid JSON ({e.Message})");
        }
    }
}
