namespace Bulwark.Engine.Serving.Sampling;

/// <summary>
/// Turns one choice's output tokens into text as they arrive, supplied by the tokenizer's owner.
/// Push returns only complete text (e.g. holds back a partial UTF-8 sequence); Flush returns the rest.
/// </summary>
public interface IIncrementalDetokenizer
{
    string Push(int tokenId);

    string Flush();
}
