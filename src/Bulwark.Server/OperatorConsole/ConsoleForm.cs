using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// A console form's fields, read with the bounds the admin API applies to its JSON: text is trimmed and at most
/// <see cref="Admin.AdminBody.MaxText"/> characters, numbers are whole and in range; a field that breaks a rule is an
/// <see cref="ArgumentException"/> naming it and the value, which the page shows.
/// </summary>
public sealed class ConsoleForm(IFormCollection form)
{
    public static async Task<ConsoleForm> ReadAsync(HttpContext context) =>
        new(context.Request.HasFormContentType ? await context.Request.ReadFormAsync(context.RequestAborted) : FormCollection.Empty);

    /// <summary>The field's text, trimmed; null when absent or empty.</summary>
    public string? Text(string name)
    {
        var value = form[name];
        if (value.Count > 1) throw new ArgumentException($"{name} was sent {value.Count} times");
        var text = value.ToString().Trim();
        if (text.Length > Admin.AdminBody.MaxText) throw new ArgumentException($"{name} must be at most {Admin.AdminBody.MaxText} characters; got {text.Length}");
        return text.Length == 0 ? null : text;
    }

    public string Required(string name) => Text(name) ?? throw new ArgumentException($"{name} is required");

    /// <summary>A whole number between <paramref name="min"/> and <paramref name="max"/>; empty is <paramref name="empty"/>.</summary>
    public long Whole(string name, long min, long max, long empty = 0)
    {
        if (Text(name) is not { } text) return empty;
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            throw new ArgumentException($"{name} must be a whole number between {min} and {max}; got '{text}'");
        return value;
    }

    public bool Checked(string name) => Text(name) is "on" or "true";

    /// <summary>A comma-separated list (model names), empty entries dropped.</summary>
    public string[] List(string name) =>
        Text(name)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? [];
}
