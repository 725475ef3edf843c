using Bulwark.Engine.KvCache;
using Bulwark.Engine.Serving.Scheduling;

namespace Bulwark.Engine.Serving.Execution;

/// <summary>
/// The flat form of one scheduled step that a model executes: token ids and positions of all
/// sequences back to back, each sequence's span and block table, and which sequences need logits.
/// Buffers grow to the largest step seen and are reused.
/// </summary>
public sealed class StepBatch
{
    private int[] _tokens = new int[64];
    private int[] _positions = new int[64];
    private int[] _seqStart = new int[8];
    private int[] _seqCount = new int[8];
    private int[] _logitRow = new int[8];
    private int[] _poolRow = new int[8];
    private int[] _poolStart = new int[8];
    private int[] _poolCount = new int[8];
    private int[] _logitRows = new int[8];
    private BlockTable[] _tables = new BlockTable[8];
    private readonly List<BlockCopy> _copies = new();

    public int TokenCount { get; private set; }

    public int SequenceCount { get; private set; }

    public int LogitRowCount { get; private set; }

    /// <summary>Rows of pooled hidden states the step writes: one per embedding input in the batch.</summary>
    public int PooledRowCount { get; private set; }

    public ReadOnlySpan<int> TokenIds => _tokens.AsSpan(0, TokenCount);

    /// <summary>Position of each batch token within its own sequence.</summary>
    public ReadOnlySpan<int> Positions => _positions.AsSpan(0, TokenCount);

    public ReadOnlySpan<BlockCopy> Copies => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_copies);

    /// <summary>Index of the sequence's first token in <see cref="TokenIds"/>.</summary>
    public int TokenStart(int seq) => _seqStart[seq];

    public int TokenCountOf(int seq) => _seqCount[seq];

    /// <summary>Position of the sequence's first batch token; its KV at lower positions is already cached.</summary>
    public int StartPosition(int seq) => _positions[_seqStart[seq]];

    /// <summary>Tokens of context the sequence's last batch token attends to (itself included).</summary>
    public int ContextLength(int seq) => StartPosition(seq) + _seqCount[seq];

    public ReadOnlySpan<int> BlockTable(int seq) => _tables[seq].AsSpan();

    /// <summary>
    /// First row of logits of the sequence, or -1 when it is mid-prefill and needs none. A sequence needs logits
    /// for its last <see cref="LogitRowsOf"/> batch tokens, in rows LogitRow .. LogitRow + LogitRowsOf − 1.
    /// </summary>
    public int LogitRow(int seq) => _logitRow[seq];

    /// <summary>Row of pooled states for an embedding input, or -1 for a generation (which gets logits instead).</summary>
    public int PoolRow(int seq) => _poolRow[seq];

    /// <summary>
    /// The batch tokens (<see cref="TokenIds"/> indices) whose final hidden states an embedding input pools in this
    /// step: all its tokens for mean, position 0 for cls, its last token for last; empty when the step holds none.
    /// </summary>
    public (int Start, int Count) PooledTokens(int seq) => (_poolStart[seq], _poolCount[seq]);
    /// <summary>
    /// Logit rows of the sequence: 1 for its last token, or 1 + its draft count when it verifies drafts
    /// (the logits after the last token and after each draft); 0 mid-prefill.
    /// </summary>
    public int LogitRowsOf(int seq) => _logitRows[seq];

    /// <summary>Index in <see cref="TokenIds"/> of the batch token whose logits are the sequence's <paramref name="row"/>th (0-based) row.</summary>
    public int LogitTokenIndex(int seq, int row) => _seqStart[seq] + _seqCount[seq] - _logitRows[seq] + row;

    internal void Load(ScheduledStep step)
    {
        TokenCount = 0;
        SequenceCount = 0;
        LogitRowCount = 0;
        PooledRowCount = 0;
        _copies.Clear();
        _copies.AddRange(step.Copies);
        EnsureCapacity(step.TokenCount, step.Sequences.Count);
        for (var s = 0; s < step.Sequences.Count; s++)
        {
            var seq = step.Sequences[s];
            var count = step.Counts[s];
            var start = seq.ComputedCount;
            _seqStart[s] = TokenCount;
            _seqCount[s] = count;
            _tables[s] = seq.Blocks;
            for (var j = 0; j < count; j++)
            {
                _tokens[TokenCount] = seq.TokenOrDraft(start + j);
                _positions[TokenCount] = start + j;
                TokenCount++;
            }
            if (seq.Pooling == Model.Config.PoolingType.None)
            {
                var drafts = seq.DraftCount;
                var needsLogits = start + count == seq.Count + drafts;
                _logitRow[s] = needsLogits ? LogitRowCount : -1;
                _logitRows[s] = needsLogits ? 1 + drafts : 0;
                if (needsLogits)
                    LogitRowCount += 1 + drafts;
                _poolRow[s] = -1;
                _poolStart[s] = _poolCount[s] = 0;
                continue;
            }
            // An embedding input samples nothing (and never drafts): no logits, one row of pooled states.
            var completes = start + count == seq.Count;
            _logitRow[s] = -1;
            _logitRows[s] = 0;
            _poolRow[s] = PooledRowCount++;
            (_poolStart[s], _poolCount[s]) = seq.Pooling switch
            {
                Model.Config.PoolingType.Mean => (_seqStart[s], count),
                Model.Config.PoolingType.Cls => (_seqStart[s], start == 0 ? 1 : 0),
                _ => (_seqStart[s] + count - 1, completes ? 1 : 0),
            };
        }
        SequenceCount = step.Sequences.Count;
    }

    private void EnsureCapacity(int tokens, int sequences)
    {
        if (_tokens.Length < tokens)
        {
            _tokens = new int[tokens];
            _positions = new int[tokens];
        }
        if (_seqStart.Length < sequences)
        {
            _seqStart = new int[sequences];
            _seqCount = new int[sequences];
            _logitRow = new int[sequences];
            _poolRow = new int[sequences];
            _poolStart = new int[sequences];
            _poolCount = new int[sequences];
            _logitRows = new int[sequences];
            _tables = new BlockTable[sequences];
        }
    }
}
