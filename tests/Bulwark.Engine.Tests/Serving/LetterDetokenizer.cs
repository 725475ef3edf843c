using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>Every token becomes two letters, so stop strings can straddle tokens.</summary>
internal sealed class LetterDetokenizer : IIncrementalDetokenizer
{
    public string Push(int tokenId) => $"{(char)('a' + tokenId % 26)}{(char)('A' + tokenId / 26)}";

    public string Flush() => "";
}
