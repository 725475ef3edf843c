using Bulwark.Engine.Formats.Gguf;

namespace Bulwark.Engine.Tokenizers.Loading;

/// <summary>
/// Writes a definition as <c>tokenizer.ggml.*</c> metadata, the inverse of
/// <see cref="GgufTokenizerReader"/>: used to turn a tokenizer.json or tokenizer.model into
/// GGUF, and by tests to hand the same vocabulary to llama.cpp.
/// </summary>
public static class GgufTokenizerWriter
{
    public static GgufWriter AddTokenizer(this GgufWriter writer, TokenizerDefinition definition)
    {
        var isSentencePiece = definition.Model == TokenizerModel.SentencePieceBpe;
        writer.Add("tokenizer.ggml.model", isSentencePiece ? "llama" : "gpt2");
        if (!isSentencePiece)
        {
            writer.Add("tokenizer.ggml.pre", definition.PreTokenizerName
                ?? throw new ArgumentException("a byte-level definition needs PreTokenizerName (llama.cpp's tokenizer.ggml.pre) to be written as GGUF", nameof(definition)));
        }
        writer.Add("tokenizer.ggml.tokens", GgufArray.Of([.. definition.Tokens]));
        writer.Add("tokenizer.ggml.token_type", GgufArray.Of(definition.Types.Select(t => (int)t).ToArray()));
        if (isSentencePiece)
        {
            writer.Add("tokenizer.ggml.scores", GgufArray.Of([.. definition.Scores!]));
            writer.Add("tokenizer.ggml.add_space_prefix", definition.AddSpacePrefix);
        }
        else
        {
            writer.Add("tokenizer.ggml.merges", GgufArray.Of(definition.Merges!.Select(m => m.Left + " " + m.Right).ToArray()));
        }
        var special = definition.Special;
        if (special.Bos >= 0) writer.Add("tokenizer.ggml.bos_token_id", (uint)special.Bos);
        if (special.Eos >= 0) writer.Add("tokenizer.ggml.eos_token_id", (uint)special.Eos);
        if (special.Unknown >= 0) writer.Add("tokenizer.ggml.unknown_token_id", (uint)special.Unknown);
        if (special.Padding >= 0) writer.Add("tokenizer.ggml.padding_token_id", (uint)special.Padding);
        if (special.EndOfTurn >= 0) writer.Add("tokenizer.ggml.eot_token_id", (uint)special.EndOfTurn);
        writer.Add("tokenizer.ggml.add_bos_token", special.AddBos);
        writer.Add("tokenizer.ggml.add_eos_token", special.AddEos);
        return writer;
    }
}
