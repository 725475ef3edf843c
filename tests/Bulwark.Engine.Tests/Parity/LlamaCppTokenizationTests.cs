using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Parity;

/// <summary>The synthetic GGUF vocabulary tokenizes the same in Bulwark and in llama.cpp.</summary>
public sealed class LlamaCppTokenizationTests : IDisposable
{
    private readonly string _dir = Fixtures.NewTempDirectory();
    private readonly string _path;

    public LlamaCppTokenizationTests()
    {
        _path = Path.Combine(_dir, "vocab.gguf");
        SyntheticModel.WriteGguf(new SyntheticModelSpec { Vocab = 3000, Dim = 32, Heads = 2, KvHeads = 1, FeedForward = 32, Layers = 1, Seed = 3 }, _path);
    }

    public static TheoryData<string, bool> Texts => new()
    {
        { "Once upon a time, there was a little girl named Lily.", false },
        { "It's 12345 o'clock; they're    spaced\t\tout\n\n  ", false },
        { "héllo wörld — naïve café, 你好世界, ¡olé! 🙂👍🏽", false },
        { "  leading and trailing spaces  ", false },
        { "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", true },
        { "<|im_start|> is plain text when specials are not parsed", false },
        { "def f(x):\n    return x**2 + 1  # comment\r\n", false },
        { "", false },
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void IdsMatchLlamaCpp(string text, bool parseSpecial)
    {
        var ours = TokenizerLoader.FromGguf(_path).Encode(text, addSpecial: false, parseSpecial: parseSpecial);
        var theirs = LlamaCppOracle.Tokenize(_path, text, addSpecial: false, parseSpecial: parseSpecial);
        Assert.Equal(theirs, ours);
    }

    public void Dispose() => Directory.Delete(_dir, true);
}
