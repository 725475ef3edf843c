namespace Bulwark.Engine.Tokenizers;

/// <summary>
/// The ids a model gives a meaning to (-1 when absent) and whether Encode adds BOS/EOS when
/// asked for special tokens. GGUF: <c>tokenizer.ggml.{bos,eos,unknown,padding,eot}_token_id</c>
/// and <c>tokenizer.ggml.add_{bos,eos}_token</c>.
/// </summary>
public sealed record SpecialTokens
{
    public int Bos { get; init; } = -1;
    public int Eos { get; init; } = -1;
    public int Unknown { get; init; } = -1;
    public int Padding { get; init; } = -1;
    /// <summary>End of turn (Llama 3 <c>&lt;|eot_id|&gt;</c>, ChatML <c>&lt;|im_end|&gt;</c>), -1 when the model has none.</summary>
    public int EndOfTurn { get; init; } = -1;
    public bool AddBos { get; init; }
    public bool AddEos { get; init; }
}
