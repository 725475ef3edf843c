using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Tokenizers;
using Bulwark.Server.Hosting;

namespace Bulwark.Server.Backends;

/// <summary>
/// Loads a GGUF model for <see cref="EmbeddedBackend"/>: weights (memory-mapped) into the paged
/// executor, the tokenizer and chat template from the file's metadata, the end-of-sequence and
/// end-of-turn ids the engine stops on.
/// </summary>
public static class EmbeddedModelLoader
{
    public const string ChatTemplateKey = "tokenizer.chat_template";

    /// <exception cref="ServerConfigurationException">The model is not a GGUF file or cannot be read; the message says why.</exception>
    public static EmbeddedBackend Load(ModelSource source, ServeOptions options)
    {
        if (!File.Exists(source.Path) || !source.Path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            throw new ServerConfigurationException([$"the embedded engine serves GGUF files; '{source.Path}' is not one (convert a Hugging Face folder with llama.cpp's convert_hf_to_gguf.py)"]);
        ITokenizer tokenizer;
        ChatTemplate? template;
        try
        {
            using (var gguf = GgufFile.Open(source.Path))
            {
                tokenizer = TokenizerLoader.FromGguf(gguf);
                template = gguf.GetStringOrNull(ChatTemplateKey) is { } text ? ChatTemplate.Parse(text) : null;
            }
        }
        catch (Exception e) when (e is InvalidDataException or TemplateException or ArgumentException or NotSupportedException)
        {
            throw new ServerConfigurationException([$"cannot load '{source.Path}': {e.Message}"]);
        }
        var special = tokenizer.Special;
        var stops = new[] { special.Eos, special.EndOfTurn }.Where(id => id >= 0).Distinct().ToArray();
        var model = GgufModelLoader.Load(source.Path);
        var executor = new PagedLlamaExecutor(model);
        try
        {
            var engine = new LlmEngine(executor, options.ToEngineOptions(stops));
            return new EmbeddedBackend(engine, tokenizer, template, source.Id, File.GetLastWriteTimeUtc(source.Path), source.Notice, owns: [executor, model]);
        }
        catch
        {
            executor.Dispose();
            model.Dispose();
            throw;
        }
    }
}
