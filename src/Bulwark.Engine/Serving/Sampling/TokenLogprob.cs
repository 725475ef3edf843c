namespace Bulwark.Engine.Serving.Sampling;

/// <summary>A token id with its natural-log probability under the model's raw distribution.</summary>
public readonly record struct TokenLogprob(int TokenId, float Logprob);
