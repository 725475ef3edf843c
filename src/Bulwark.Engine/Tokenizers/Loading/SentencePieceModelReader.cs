using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Tokenizers.Loading;

/// <summary>
/// Reads a SentencePiece <c>tokenizer.model</c> (sentencepiece_model.proto: ModelProto with
/// pieces = 1, trainer_spec = 2, normalizer_spec = 3). Only BPE models are accepted: that is
/// what Llama 2, TinyLlama and Mistral ship; Unigram models are refused by name.
/// </summary>
internal static class SentencePieceModelReader
{
    private const int ModelTypeBpe = 2;

    public static TokenizerDefinition Read(string path)
    {
        var data = File.ReadAllBytes(path);
        var tokens = new List<string>();
        var scores = new List<float>();
        var types = new List<TokenType>();
        int modelType = 1, unk = 0, bos = 1, eos = 2, pad = -1;
        var addDummyPrefix = true;

        var model = new ProtobufReader(data, path);
        while (!model.AtEnd)
        {
            var (field, wire) = model.ReadKey();
            if (field == 1 && wire == 2) ReadPiece(model.ReadBytes(), path, tokens, scores, types);
            else if (field == 2 && wire == 2) ReadTrainerSpec(model.ReadBytes(), path, ref modelType, ref unk, ref bos, ref eos, ref pad);
            else if (field == 3 && wire == 2) ReadNormalizerSpec(model.ReadBytes(), path, ref addDummyPrefix);
            else model.Skip(wire);
        }

        if (modelType != ModelTypeBpe)
            throw new ModelFormatException(path, "trainer_spec.model_type", $"only BPE ({ModelTypeBpe}) is supported; got {modelType}");
        if (tokens.Count == 0) throw new ModelFormatException(path, "pieces", "the model has no pieces");
        return new TokenizerDefinition
        {
            Model = TokenizerModel.SentencePieceBpe,
            Tokens = tokens,
            Scores = scores,
            Types = types,
            AddSpacePrefix = addDummyPrefix,
            Special = new SpecialTokens
            {
                Unknown = InRange(unk, tokens.Count),
                Bos = InRange(bos, tokens.Count),
                Eos = InRange(eos, tokens.Count),
                Padding = InRange(pad, tokens.Count),
                AddBos = bos >= 0,
                AddEos = false,
            },
        };
    }

    private static int InRange(int id, int count) => id >= 0 && id < count ? id : -1;

    private static void ReadPiece(ReadOnlySpan<byte> bytes, string path, List<string> tokens, List<float> scores, List<TokenType> types)
    {
        var reader = new ProtobufReader(bytes, path);
        string piece = "";
        float score = 0;
        var type = TokenType.Normal;
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadKey();
            if (field == 1 && wire == 2) piece = reader.ReadString();
            else if (field == 2 && wire == 5) score = reader.ReadFloat();
            else if (field == 3 && wire == 0)
            {
                var value = reader.ReadVarint();
                type = value is >= 1 and <= 6 ? (TokenType)value : throw new ModelFormatException(path, $"pieces[{tokens.Count}].type", $"unknown piece type {value}");
            }
            else reader.Skip(wire);
        }
        tokens.Add(piece);
        scores.Add(score);
        types.Add(type);
    }

    private static void ReadTrainerSpec(ReadOnlySpan<byte> bytes, string path, ref int modelType, ref int unk, ref int bos, ref int eos, ref int pad)
    {
        var reader = new ProtobufReader(bytes, path);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadKey();
            if (wire != 0) { reader.Skip(wire); continue; }
            var value = (int)(long)reader.ReadVarint(); // int32 fields: negative values are 10-byte varints
            switch (field)
            {
                case 3: modelType = value; break;
                case 40: unk = value; break;
                case 41: bos = value; break;
                case 42: eos = value; break;
                case 43: pad = value; break;
            }
        }
    }

    private static void ReadNormalizerSpec(ReadOnlySpan<byte> bytes, string path, ref bool addDummyPrefix)
    {
        var reader = new ProtobufReader(bytes, path);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadKey();
            if (field == 3 && wire == 0) addDummyPrefix = reader.ReadVarint() != 0;
            else reader.Skip(wire);
        }
    }
}
