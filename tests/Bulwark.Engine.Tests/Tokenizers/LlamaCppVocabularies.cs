using System.Collections.Concurrent;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// The vocabularies llama.cpp is compared on, each written to a vocab-only GGUF and loaded
/// once per test class: Llama 2's SentencePiece model from the fixtures and the GPT-2, cl100k
/// and o200k byte-level vocabularies from the Microsoft.ML.Tokenizers.Data packages.
/// </summary>
public sealed class LlamaCppVocabularies : IDisposable
{
    public const string Llama2 = "llama2";

    private readonly ConcurrentDictionary<string, Lazy<LlamaCppVocabulary>> _loaded = new();

    public LlamaCppVocabulary Get(string name) => _loaded.GetOrAdd(name, n => new Lazy<LlamaCppVocabulary>(() => Load(n))).Value;

    private static LlamaCppVocabulary Load(string name)
    {
        if (name == Llama2)
            return new LlamaCppVocabulary(name, TokenizerLoader.ReadSentencePieceModel(Fixtures.PathOf("tokenizers", "llama2", "tokenizer.model")));
        var tiktoken = TiktokenVocabularies.Get(name);
        return new LlamaCppVocabulary(name, tiktoken.Definition with { PreTokenizerName = tiktoken.LlamaCppPre });
    }

    public void Dispose()
    {
        foreach (var vocabulary in _loaded.Values)
        {
            if (vocabulary.IsValueCreated) vocabulary.Value.Dispose();
        }
    }
}
