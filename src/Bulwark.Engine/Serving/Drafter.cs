using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Serving.Speculation;

namespace Bulwark.Engine.Serving;

/// <summary>
/// Proposes a decoding sequence's draft tokens before the step is scheduled: prompt lookup, cut so the
/// verification can never emit past max_tokens or the context, and, for a constrained sequence, cut at
/// the first draft its grammar refuses (the target could never accept it).
/// </summary>
internal static class Drafter
{
    /// <summary>
    /// Sets the sequence's drafts (possibly none) for the next step; a sequence drafting with the draft model is
    /// added to <paramref name="draftModel"/> instead, drafted for in one batch by <see cref="DraftModelRunner"/>,
    /// and then cut by <see cref="CutToGrammar"/>.
    /// </summary>
    public static void Propose(Sequence seq, int maxTokens, int maxContext, TokenConstraint? constraint, IReadOnlyList<int> eosIds,
        List<DraftModelRunner.Request>? draftModel = null)
    {
        var config = seq.Speculation;
        // Only a sequence about to decode, with output already (the first output token comes from the prompt's last chunk).
        if (config is not { Enabled: true } || seq.Count - seq.ComputedCount != 1 || seq.OutputCount == 0)
        {
            seq.SetDraftCount(0);
            return;
        }
        // A step emits at most drafts + 1 tokens; drafts sit at positions Count .. Count + k − 1.
        var k = Math.Min(config.NumSpeculativeTokens, Math.Min(maxTokens - seq.OutputCount - 1, maxContext - seq.Count));
        if (k <= 0)
        {
            seq.SetDraftCount(0);
            return;
        }
        if (config.Method == SpeculativeMethod.DraftModel)
        {
            seq.SetDraftCount(0);
            draftModel?.Add(new DraftModelRunner.Request(seq, k));
            return;
        }
        var drafts = seq.DraftBuffer(k);
        var count = PromptLookup.Propose(seq.Tokens, config.PromptLookupMin, config.PromptLookupMax, drafts);
        seq.SetDraftCount(count);
        CutToGrammar(seq, constraint, eosIds);
    }

    /// <summary>Cuts a constrained sequence's drafts at the first one its grammar refuses.</summary>
    public static void CutToGrammar(Sequence seq, TokenConstraint? constraint, IReadOnlyList<int> eosIds)
    {
        if (seq.DraftCount > 0 && seq.Constraint is { } state && constraint is not null)
            seq.SetDraftCount(AllowedPrefix(seq.Drafts, state, constraint, eosIds));
    }

    /// <summary>How many leading drafts the grammar allows from <paramref name="state"/> (end of sequence only where it accepts, and nothing after it).</summary>
    private static int AllowedPrefix(ReadOnlySpan<int> drafts, MatcherState state, TokenConstraint constraint, IReadOnlyList<int> eosIds)
    {
        for (var i = 0; i < drafts.Length; i++)
        {
            if (eosIds.Contains(drafts[i]))
                return state.Accepting ? i + 1 : i;
            // Drafts never hold the output's first token (see Propose), so no first-token byte rule applies.
            state = constraint.Advance(state, drafts[i], first: false);
            if (state.IsDead)
                return i;
        }
        return drafts.Length;
    }
}
