namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// A guard model's prompt as pieces: the format's own text, which may spell the model's control
/// tokens (<c>&lt;|eot_id|&gt;</c>, <c>&lt;|im_start|&gt;</c>) and is tokenized with them, and the
/// conversation's text, which is tokenized as plain text, so a user who writes a control token
/// cannot close the guard's turn and answer for it.
/// </summary>
public sealed class GuardPrompt
{
    private readonly List<(string Text, bool IsContent)> _pieces = [];

    public IReadOnlyList<(string Text, bool IsContent)> Pieces => _pieces;

    /// <summary>The whole prompt as one string (what an upstream's completion endpoint receives).</summary>
    public string Text => string.Concat(_pieces.Select(p => p.Text));

    internal GuardPrompt Format(string text)
    {
        _pieces.Add((text, false));
        return this;
    }

    internal GuardPrompt Content(string text)
    {
        _pieces.Add((text, true));
        return this;
    }
}
