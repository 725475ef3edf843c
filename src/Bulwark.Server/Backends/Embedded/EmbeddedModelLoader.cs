using Bulwark.Engine.Formats;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Templates.Jinja;
using Bulwark.Engine.Templates;

namespace Bulwark.Server.Backends.Embedded;

/// <summary>
/// Loads a model for <see cref="EmbeddedBackend"/> through <see cref="EngineFactory"/>: a GGUF file
/// or a Hugging Face folder (config.json + safetensors), its tokenizer and chat template, and the
/// end-of-sequence and end-of-turn ids the engine stops on, into the paged executor.
/// </summary>
public static class EmbeddedModelLoader
{
    /// <exception cref="ServerConfigurationException">The model cannot be read, or its chat template is outside what Bulwark renders; the message says why.</exception>
    /// <param name="engine">How the engine is sized; an empty end-of-sequence list lets the model's own ids apply.</param>
    /// <param name="quantize">Quantize F32/F16/BF16 matrices to this type while loading; null serves them as stored.</param>
    /// <param name="notice">Receives what quantizing at load did, once.</param>
    /// <param name="embeddings">How the model answers /v1/embeddings; null: as its file says.</param>
    /// <param name="toolFormat">How the model writes tool calls; null: detected from its chat template.</param>
    /// <param name="draft">A draft model to load beside it for draft-model speculation (quantized like the model); null: none.</param>
    public static EmbeddedBackend Load(string path, string id, string? modelNotice, EngineOptions engine, GgmlType? quantize = null, Action<string>? notice = null,
        EmbeddingSettings? embeddings = null, Bulwark.Engine.Tools.ToolCallFormat? toolFormat = null, DraftModelLoad? draft = null)
    {
        LoadedEngine loaded;
        try
        {
            loaded = EngineFactory.Load(path, engine,
                load: new ModelLoadOptions { QuantizeTo = quantize, Notice = notice is null ? null : line => notice($"{id}: {line}") },
                draftModel: draft);
        }
        catch (Exception e) when (e is ModelFormatException or FileNotFoundException or InvalidDataException or TemplateException or ArgumentException or NotSupportedException)
        {
            throw new ServerConfigurationException([$"cannot load '{path}': {e.Message}"]);
        }
        if (loaded.ChatTemplateError is { } templateError)
        {
            loaded.Dispose();
            throw new ServerConfigurationException([$"cannot serve '{path}': its chat template cannot be used ({templateError})"]);
        }
        var created = Directory.Exists(path) ? Directory.GetLastWriteTimeUtc(path) : File.GetLastWriteTimeUtc(path);
        var settings = embeddings ?? new EmbeddingSettings();
        return new EmbeddedBackend(loaded.Engine, loaded.Tokenizer, loaded.ChatTemplate, id, created, modelNotice, owns: [loaded],
            pooling: settings.PoolingFor(loaded.Config.Pooling), matryoshkaMinDimensions: settings.MatryoshkaMinDimensions, toolFormat: toolFormat);
    }
}
