using Bulwark.Engine.Tokenizers.ByteLevel;
using Bulwark.Engine.Tokenizers.SentencePiece;

namespace Bulwark.Engine.Tokenizers.Loading;

/// <summary>Builds the tokenizer a definition describes.</summary>
public static class TokenizerFactory
{
    public static ITokenizer Create(TokenizerDefinition definition, TokenizerLimits? limits = null) => definition.Model switch
    {
        TokenizerModel.ByteLevelBpe => new ByteLevelBpeTokenizer(definition, limits ?? TokenizerLimits.Default),
        TokenizerModel.SentencePieceBpe => new SentencePieceBpeTokenizer(definition, limits ?? TokenizerLimits.Default),
        _ => throw new ArgumentOutOfRangeException(nameof(definition), definition.Model, "unknown tokenizer model"),
    };
}
