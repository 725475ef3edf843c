namespace Bulwark.Engine.Serving.Sampling;

/// <summary>
/// A token id with its natural-log probability under the model's raw distribution. The engine
/// leaves <see cref="Text"/> empty; whoever owns the tokenizer fills it for the client.
/// </summary>
public readonly record struct TokenLogprob(int TokenId, float Logprob, string Text = "");
