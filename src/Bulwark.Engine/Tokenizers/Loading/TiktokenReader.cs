using System.Text;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Tokenizers.ByteLevel;

namespace Bulwark.Engine.Tokenizers.Loading;

/// <summary>
/// Reads OpenAI's <c>.tiktoken</c> rank files ("base64-bytes rank" per line, or ranks implied by order). tiktoken has no
/// merge list: it joins the adjacent pair whose concatenation has the lowest rank. The merges
/// are derived the way Hugging Face converts tiktoken vocabularies (every split of a token into
/// two tokens, ordered by the token's rank), which reproduces that rule as ranked merges.
/// </summary>
internal static class TiktokenReader
{
    public static TokenizerDefinition Read(Stream stream, string source, string pattern, IReadOnlyDictionary<string, int> specialTokens)
    {
        var ranks = new List<byte[]>();
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (line.Length == 0) continue;
            // Microsoft.ML.Tokenizers' packaged copies start with a size hint and drop the
            // ranks (each line's rank is its position); OpenAI's files carry them.
            if (lineNumber == 1 && line.StartsWith("Capacity:", StringComparison.Ordinal)) continue;
            var space = line.IndexOf(' ');
            var rank = ranks.Count;
            if (space == 0 || (space > 0 && !int.TryParse(line.AsSpan(space + 1), out rank)))
                throw new ModelFormatException(source, $"line {lineNumber}", "expected '<base64> [<rank>]'");
            if (space < 0) space = line.Length;
            if (rank != ranks.Count)
                throw new ModelFormatException(source, $"line {lineNumber}", $"ranks must be dense and ascending; expected {ranks.Count}, got {rank}");
            ranks.Add(Convert.FromBase64String(line[..space]));
        }

        var size = Math.Max(ranks.Count, specialTokens.Count == 0 ? 0 : specialTokens.Values.Max() + 1);
        var tokens = new string[size];
        var types = new TokenType[size];
        var ids = new ByteSequenceMap(ranks.Count);
        for (var id = 0; id < ranks.Count; id++)
        {
            tokens[id] = ByteLevelAlphabet.Encode(ranks[id]);
            types[id] = TokenType.Normal;
            ids.TryAdd(ranks[id], id);
        }
        for (var id = ranks.Count; id < size; id++)
        {
            tokens[id] = $"[PAD{id}]"; // the filler convert_hf_to_gguf uses for holes in the id space
            types[id] = TokenType.Unused;
        }
        foreach (var (text, id) in specialTokens)
        {
            if (id < ranks.Count) throw new ModelFormatException(source, text, $"special token id {id} collides with a ranked token");
            tokens[id] = text;
            types[id] = TokenType.Control;
        }

        return new TokenizerDefinition
        {
            Model = TokenizerModel.ByteLevelBpe,
            Tokens = tokens,
            Types = types,
            Merges = DeriveMerges(ranks, ids),
            PreTokenizerPatterns = [pattern],
            IgnoreMerges = true, // tiktoken emits a piece that is a whole token directly
        };
    }

    private static List<(string, string)> DeriveMerges(List<byte[]> ranks, ByteSequenceMap ids)
    {
        var merges = new List<(string, string)>(ranks.Count);
        var local = new List<(int Left, int Right)>();
        for (var rank = 0; rank < ranks.Count; rank++)
        {
            var token = ranks[rank];
            if (token.Length < 2) continue;
            local.Clear();
            for (var split = 1; split < token.Length; split++)
            {
                if (ids.TryGet(token.AsSpan(0, split), out var left) && ids.TryGet(token.AsSpan(split), out var right))
                    local.Add((left, right));
            }
            local.Sort();
            foreach (var (left, right) in local)
                merges.Add((ByteLevelAlphabet.Encode(ranks[left]), ByteLevelAlphabet.Encode(ranks[right])));
        }
        return merges;
    }
}
