using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Tokenizers;

namespace Bulwark.Engine.Serving;

/// <summary>Loads a model file into a running <see cref="LlmEngine"/> over the paged executor, with its tokenizer and chat template.</summary>
public static class EngineFactory
{
    /// <param name="modelPath">A GGUF file.</param>
    /// <param name="options">Engine options; an empty <see cref="EngineOptions.EosTokenIds"/> is filled from the tokenizer.</param>
    /// <param name="maxContextLength">Caps the model's context length (smaller KV needs per sequence); null keeps it.</param>
    public static LoadedEngine Load(string modelPath, EngineOptions? options = null, int? maxContextLength = null)
    {
        options ??= new EngineOptions();
        if (Directory.Exists(modelPath))
            throw new NotSupportedException($"{modelPath} is a folder; the engine loads a .gguf file (safetensors folders need the safetensors loader)");
        if (!File.Exists(modelPath))
            throw new FileNotFoundException($"model file not found: {modelPath}", modelPath);

        ITokenizer tokenizer;
        string? templateSource;
        using (var gguf = GgufFile.Open(modelPath))
        {
            tokenizer = TokenizerLoader.FromGguf(gguf);
            templateSource = gguf.GetStringOrNull("tokenizer.chat_template");
        }
        var (template, templateError) = ParseTemplate(templateSource);

        var model = GgufModelLoader.Load(modelPath);
        PagedLlamaExecutor? executor = null;
        try
        {
            if (tokenizer.VocabSize > model.Config.VocabularySize)
                throw new Formats.ModelFormatException(modelPath, "tokenizer.ggml.tokens",
                    $"the tokenizer has {tokenizer.VocabSize} tokens; the model's embedding has only {model.Config.VocabularySize} rows");
            executor = new PagedLlamaExecutor(model, maxContextLength);
            var eos = options.EosTokenIds.Count > 0 ? options.EosTokenIds : EosIds(tokenizer.Special);
            var engine = new LlmEngine(executor, options with { EosTokenIds = eos });
            var id = System.IO.Path.GetFileNameWithoutExtension(modelPath);
            return new LoadedEngine(id, System.IO.Path.GetFullPath(modelPath), model, executor, engine, tokenizer, templateSource, template, templateError, eos);
        }
        catch
        {
            executor?.Dispose();
            model.Dispose();
            throw;
        }
    }

    /// <summary>EOS and end-of-turn, when the model names them.</summary>
    public static IReadOnlyList<int> EosIds(SpecialTokens special) =>
        new[] { special.Eos, special.EndOfTurn }.Where(id => id >= 0).Distinct().ToArray();

    private static (ChatTemplate?, string?) ParseTemplate(string? source)
    {
        if (source is null)
            return (null, null);
        try
        {
            return (ChatTemplate.Parse(source), null);
        }
        catch (TemplateException e)
        {
            // A model whose template is outside the supported subset still serves plain completions.
            return (null, $"the model's chat template cannot be used: {e.Message}");
        }
    }
}
