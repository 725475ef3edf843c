using Bulwark.Engine.Formats;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Templates;
using Bulwark.Server.Hosting;

namespace Bulwark.Server.Backends;

/// <summary>
/// Loads a model for <see cref="EmbeddedBackend"/> through <see cref="EngineFactory"/>: a GGUF file
/// or a Hugging Face folder (config.json + safetensors), its tokenizer and chat template, and the
/// end-of-sequence and end-of-turn ids the engine stops on, into the paged executor.
/// </summary>
public static class EmbeddedModelLoader
{
    /// <exception cref="ServerConfigurationException">The model cannot be read, or its chat template is outside what Bulwark renders; the message says why.</exception>
    /// <param name="notice">Receives what quantizing at load did (<see cref="ServeOptions.Quantize"/>), once.</param>
    public static EmbeddedBackend Load(ModelSource source, ServeOptions options, Action<string>? notice = null)
    {
        LoadedEngine loaded;
        try
        {
            // An empty stop list lets the factory use the model's own EOS and end-of-turn ids.
            loaded = EngineFactory.Load(source.Path, options.ToEngineOptions([]),
                load: new Bulwark.Engine.Model.Loading.ModelLoadOptions { QuantizeTo = options.QuantizeType, Notice = notice is null ? null : line => notice($"{source.Id}: {line}") });
        }
        catch (Exception e) when (e is ModelFormatException or FileNotFoundException or InvalidDataException or TemplateException or ArgumentException or NotSupportedException)
        {
            throw new ServerConfigurationException([$"cannot load '{source.Path}': {e.Message}"]);
        }
        if (loaded.ChatTemplateError is { } templateError)
        {
            loaded.Dispose();
            throw new ServerConfigurationException([$"cannot serve '{source.Path}': its chat template cannot be used ({templateError})"]);
        }
        var created = Directory.Exists(source.Path) ? Directory.GetLastWriteTimeUtc(source.Path) : File.GetLastWriteTimeUtc(source.Path);
        return new EmbeddedBackend(loaded.Engine, loaded.Tokenizer, loaded.ChatTemplate, source.Id, created, source.Notice, owns: [loaded]);
    }
}
