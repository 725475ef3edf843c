using System.Text;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// One choice's way past the output stage of the guard model: the deltas the rest of the output guard
/// let through are held (<see cref="Hold"/>) until a check covering them passed (<see cref="CheckAsync"/>),
/// then released in order (<see cref="Release"/>). The guard judges the answer so far: the content and
/// the tool calls' names and arguments, which are output as much as the text is.
/// </summary>
public sealed class ChoiceModeration
{
    private readonly OutputModeration _moderation;
    private readonly string _user;
    private readonly int _every;
    private readonly string? _tenant;
    private readonly StringBuilder _answer = new();
    private List<ChoiceDelta> _held = [];
    private int _unchecked;

    internal ChoiceModeration(OutputModeration moderation, string user, int every, string? tenant) =>
        (_moderation, _user, _every, _tenant) = (moderation, user, every, tenant);

    /// <summary>Checks made so far.</summary>
    public int Checks { get; private set; }

    /// <summary>The most severe check so far (the latest of equals); null before the first.</summary>
    public GuardModelCheck? Deciding { get; private set; }

    /// <summary>Deltas held, waiting for a check.</summary>
    public int Held => _held.Count;

    /// <summary>
    /// Holds <paramref name="shown"/> (what the rest of the output guard let through of a delta, or nothing)
    /// that stands for <paramref name="generatedTokens"/> new tokens. True when a check is due: the
    /// choice's last delta, or in a stream the window of tokens filled with text waiting.
    /// </summary>
    public bool Hold(ChoiceDelta? shown, int generatedTokens)
    {
        _unchecked += generatedTokens;
        if (shown is not { } delta) return _held.Count > 0 && _unchecked >= _every;
        _held.Add(delta);
        _answer.Append(delta.Text);
        foreach (var call in delta.ToolCalls ?? [])
        {
            if (call.Name is not null) _answer.Append('\n').Append(call.Name).Append(": ");
            _answer.Append(call.Arguments);
        }
        return delta.Finish is not null || _unchecked >= _every;
    }

    /// <summary>Checks the answer so far; true when what is held may be released, false when the choice must end (content_filter).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the client left).</exception>
    public async Task<bool> CheckAsync(CancellationToken cancellationToken)
    {
        _unchecked = 0;
        var check = await _moderation.CheckAsync(_user, _answer.ToString(), _tenant, cancellationToken).ConfigureAwait(false);
        Checks++;
        if (Deciding is null || check.Decision >= Deciding.Decision) Deciding = check;
        if (check.Decision != GuardDecision.Block) return true;
        _held.Clear();
        return false;
    }

    /// <summary>The held deltas, in order, now that a check passed them; the choice holds nothing after.</summary>
    public List<ChoiceDelta> Release()
    {
        var released = _held;
        _held = [];
        return released;
    }
}
