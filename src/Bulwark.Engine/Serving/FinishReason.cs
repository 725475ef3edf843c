namespace Bulwark.Engine.Serving;

public enum FinishReason
{
    /// <summary>A stop token, an end-of-sequence token or a stop string.</summary>
    Stop,

    /// <summary>max_tokens or the model's context length was reached.</summary>
    Length,
}
