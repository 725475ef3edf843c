using Bulwark.Engine.Synthesis;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Registry;

namespace Bulwark.Server.Models;

/// <summary>Where the served model comes from, as start-up reports it.</summary>
public sealed record ModelSource(string Id, string Path, string Origin, string? Notice)
{
    /// <summary>The registry name and version when the model came from the registry (null for a plain path or the demo).</summary>
    public (string Name, string Version)? RegisteredAs { get; init; }

    /// <summary>A draft model loaded beside this one for draft-model speculation (resolved as a model is); null: none.</summary>
    public ModelSource? Draft { get; init; }

    public const string DemoId = "bulwark-demo";
    public const string DemoFileName = "bulwark-demo.gguf";

    public const string DemoNotice =
        "bulwark-demo has random weights: its replies are gibberish; it only shows the server working. " +
        "Serve a real model instead with: bulwark serve --model /path/to/model.gguf";

    /// <summary>
    /// Resolves <paramref name="model"/>: empty → the demo model (written once into the data
    /// directory); the name of a registered model → that model, verified against its manifest before
    /// anything loads, even when a file or folder of the same name exists (write <c>./NAME</c> to mean
    /// the path); otherwise an existing file or folder → that path, unverified. With
    /// <paramref name="requireSignature"/> only registered, signed models are served: a plain path and
    /// the demo model are refused, since nothing vouches for their bytes.
    /// </summary>
    /// <exception cref="ServerConfigurationException">Nothing matches, the registered model fails verification, or a signature is required and the model has none.</exception>
    public static async Task<ModelSource> ResolveAsync(string? model, DataDirectory data, bool requireSignature, CancellationToken ct = default)
    {
        if (string.IsNullOrWhiteSpace(model))
        {
            if (requireSignature)
                throw new ServerConfigurationException([
                    "RequireSignature is set but no --model was given: the built-in demo model is not signed. " +
                    "Serve a registered, signed model: bulwark models keygen, bulwark models add NAME --from PATH --sign, then serve --model NAME."]);
            return EnsureDemo(data);
        }
        var registry = ModelRegistry.Open(data);
        var isBareName = model.IndexOfAny(['/', '\\']) < 0;
        if (isBareName && registry.Names().Contains(model, StringComparer.Ordinal))
        {
            try
            {
                var (manifest, path) = await registry.ResolveVerifiedAsync(model, null, requireSignature, ct).ConfigureAwait(false);
                var shadowed = File.Exists(model) || Directory.Exists(model)
                    ? $"'{model}' is both a registered model and a path here; serving the registered model (give ./{model} to serve the path)"
                    : null;
                return new ModelSource(model, path, $"registered model {model} version {manifest.Version}, verified" + (requireSignature ? " and signed" : ""), shadowed)
                {
                    RegisteredAs = (model, manifest.Version),
                };
            }
            catch (RegistryException e)
            {
                throw new ServerConfigurationException([$"--model '{model}' cannot be served: {e.Message}"]);
            }
        }
        if (File.Exists(model) || Directory.Exists(model))
        {
            var full = System.IO.Path.GetFullPath(model);
            if (requireSignature)
                throw new ServerConfigurationException([
                    $"--model '{model}' is a path, and RequireSignature is set: only registered, signed models are served. " +
                    $"Register and sign it with: bulwark models add NAME --from {full} --sign (after bulwark models keygen), then serve --model NAME"]);
            var id = File.Exists(full) ? System.IO.Path.GetFileNameWithoutExtension(full) : new DirectoryInfo(full).Name;
            return new ModelSource(id, full, "file " + full + " (not verified: register it with 'bulwark models add' to verify it on load)", null);
        }
        throw new ServerConfigurationException([
            $"--model '{model}' is neither an existing file or folder nor a registered model (registered: {Registered(registry)}). " +
            "Give a path to a GGUF file or model folder, or register one with: bulwark models add NAME --from PATH"]);
    }

    /// <summary>Loads this model into the embedded engine, sized and quantized as <paramref name="options"/> say.</summary>
    /// <exception cref="ServerConfigurationException">The model cannot be read or served; the message says why.</exception>
    public EmbeddedBackend LoadEmbedded(ServeOptions options, Action<string>? notice = null) =>
        EmbeddedModelLoader.Load(Path, Id, Notice, options.ToEngineOptions([], Draft is not null), options.QuantizeType, notice, options.Embeddings, options.ToolCallFormatOf(Id),
            Draft is null ? null : new Bulwark.Engine.Serving.DraftModelLoad(Draft.Path) { KvCacheMemoryBytes = options.Speculative.DraftKvCacheMemoryBytes });

    /// <summary>The demo model's file, written once: into a temporary file, then renamed, so a crash never leaves half a model.</summary>
    public static ModelSource EnsureDemo(DataDirectory data)
    {
        data.EnsureCreated();
        var path = System.IO.Path.Combine(data.ModelsPath, DemoFileName);
        SyntheticModel.WriteDemoGgufIfMissing(path);
        return new ModelSource(DemoId, path, "demo model " + path, DemoNotice);
    }

    private static string Registered(ModelRegistry registry)
    {
        var names = registry.Names();
        return names.Count == 0 ? "none" : string.Join(", ", names.Take(10)) + (names.Count > 10 ? ", ..." : "");
    }
}
