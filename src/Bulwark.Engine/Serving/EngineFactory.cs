using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Templates.Jinja;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Engine.Tokenizers;

namespace Bulwark.Engine.Serving;

/// <summary>Loads a model file into a running <see cref="LlmEngine"/> over the paged executor, with its tokenizer and chat template.</summary>
public static class EngineFactory
{
    /// <param name="modelPath">A GGUF file or a Hugging Face folder (config.json, *.safetensors, tokenizer files), as <see cref="ModelLoader"/> reads them.</param>
    /// <param name="options">Engine options; an empty <see cref="EngineOptions.EosTokenIds"/> is filled from the tokenizer.</param>
    /// <param name="maxContextLength">Caps the model's context length (smaller KV needs per sequence); null keeps it.</param>
    /// <param name="load">How stored weights become running weights (<c>--quantize</c>); null keeps them as stored.</param>
    /// <param name="draftModel">A smaller model with the same tokenizer, loaded beside it for draft-model speculation
    /// (<see cref="Speculation.SpeculativeMethod.DraftModel"/>); null: none.</param>
    public static LoadedEngine Load(string modelPath, EngineOptions? options = null, int? maxContextLength = null, ModelLoadOptions? load = null,
        DraftModelLoad? draftModel = null)
    {
        options ??= new EngineOptions();
        var full = System.IO.Path.GetFullPath(modelPath);
        if (!File.Exists(full) && !Directory.Exists(full))
            throw new FileNotFoundException($"model not found: {modelPath} ({ModelLoader.Expected})", modelPath);

        var tokenizer = TokenizerLoader.FromPath(full);
        var templateSource = TemplateOf(full);
        var (template, templateError) = ParseTemplate(templateSource?.Source);

        var model = ModelLoader.Load(full, load);
        PagedLlamaExecutor? executor = null;
        DraftModel? draft = null;
        try
        {
            if (tokenizer.VocabSize > model.Config.VocabularySize)
                throw new Formats.ModelFormatException(full, "vocab_size",
                    $"the tokenizer has {tokenizer.VocabSize} tokens; the model's embedding has only {model.Config.VocabularySize} rows");
            executor = new PagedLlamaExecutor(model, maxContextLength, options.KvCacheType);
            if (draftModel is not null)
            {
                draft = LoadDraft(draftModel.Path, tokenizer, model, executor.MaxContextLength, load, options.KvCacheType);
                options = options with { DraftModel = new DraftModelOptions(draft.Executor) { KvCacheMemoryBytes = draftModel.KvCacheMemoryBytes } };
            }
            var eos = options.EosTokenIds.Count > 0 ? options.EosTokenIds : EosIds(tokenizer.Special);
            var engine = new LlmEngine(executor, options with { EosTokenIds = eos });
            var id = Directory.Exists(full) ? System.IO.Path.GetFileName(full.TrimEnd(System.IO.Path.DirectorySeparatorChar)) : System.IO.Path.GetFileNameWithoutExtension(full);
            return new LoadedEngine(id, full, model, executor, engine, tokenizer, templateSource, template, templateError, eos) { Draft = draft };
        }
        catch
        {
            draft?.Dispose();
            executor?.Dispose();
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads a draft model and checks it can draft for <paramref name="target"/>: the same vocabulary size, and a
    /// tokenizer that gives every id the same text (drafts are token ids; another tokenizer's ids mean other words).
    /// </summary>
    private static DraftModel LoadDraft(string path, ITokenizer targetTokenizer, Model.LlamaModel target, int maxContextLength, ModelLoadOptions? load, KvCache.KvCacheType kvType)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full) && !Directory.Exists(full))
            throw new FileNotFoundException($"draft model not found: {path} ({ModelLoader.Expected})", path);
        var tokenizer = TokenizerLoader.FromPath(full);
        if (tokenizer.VocabSize != targetTokenizer.VocabSize)
            throw new Formats.ModelFormatException(full, "vocab_size",
                $"the draft model's tokenizer has {tokenizer.VocabSize} tokens; the model's has {targetTokenizer.VocabSize}: a draft model must share the tokenizer");
        for (var id = 0; id < tokenizer.VocabSize; id++)
            if (tokenizer.TokenText(id) != targetTokenizer.TokenText(id))
                throw new Formats.ModelFormatException(full, "tokenizer",
                    $"the draft model's token {id} differs from the model's: a draft model must share the tokenizer");
        var model = ModelLoader.Load(full, load);
        try
        {
            if (model.Config.VocabularySize != target.Config.VocabularySize)
                throw new Formats.ModelFormatException(full, "vocab_size",
                    $"the draft model's embedding has {model.Config.VocabularySize} rows; the model's has {target.Config.VocabularySize}");
            var executor = new PagedLlamaExecutor(model, Math.Min(maxContextLength, model.Config.ContextLength), kvType);
            if (executor.MaxContextLength < maxContextLength)
            {
                executor.Dispose();
                throw new Formats.ModelFormatException(full, "context_length",
                    $"the draft model's context is {model.Config.ContextLength} tokens; the model serves {maxContextLength} (cap it with the context option)");
            }
            return new DraftModel(full, model, executor);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A model's tokenizer and chat template without its weights (a GGUF file, a Hugging Face folder, a
    /// tokenizer.json or tokenizer.model): what it takes to count a prompt exactly for a model another
    /// engine runs. The template is null when the model ships none, with the reason when it cannot be used.
    /// </summary>
    public static (ITokenizer Tokenizer, ChatTemplate? Template, string? TemplateError) LoadPrompting(string path)
    {
        var full = Path.GetFullPath(path);
        var tokenizer = TokenizerLoader.FromPath(full);
        var (template, error) = ParseTemplate(TemplateOf(full)?.Source);
        return (tokenizer, template, error);
    }

    /// <summary>The model's own template (GGUF metadata, tokenizer_config.json or chat_template.jinja); null when it ships none.</summary>
    private static ChatTemplateSource? TemplateOf(string path)
    {
        try
        {
            return ChatTemplateSource.FromModel(path);
        }
        catch (Formats.ModelFormatException e) when (e.Field == "tokenizer.chat_template")
        {
            return null;
        }
        catch (FileNotFoundException)
        {
            return null;
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

/// <summary>A draft model to load beside a model (a GGUF file or a Hugging Face folder) and the memory its KV cache may take.</summary>
public sealed record DraftModelLoad(string Path)
{
    public long KvCacheMemoryBytes { get; init; } = 128L << 20;
}
