using System.Text.Json;

namespace Bulwark.Server.Registry;

/// <summary>Which version of a model serves, and the versions that served before it (newest last).</summary>
public sealed record RegistryState(string? Current, IReadOnlyList<string> History);

/// <summary>What <see cref="ModelRegistry.AddAsync"/> records about a new version besides its files.</summary>
public sealed record AddOptions
{
    public bool Sign { get; init; }
    public string? KeyId { get; init; }
    public ManifestSource? Source { get; init; }
    public string? Parent { get; init; }
    public string? Quantization { get; init; }
    public string? Architecture { get; init; }

    /// <summary>Make the new version the serving one (the first version always is).</summary>
    public bool MakeCurrent { get; init; }
}

/// <summary>
/// The model registry in the data directory. Layout:
/// <c>&lt;root&gt;/&lt;name&gt;/versions/vN/{manifest.json, files/...}</c> and
/// <c>&lt;root&gt;/&lt;name&gt;/state.json</c> (current version and history for roll-back).
/// A version is immutable once added: its folder is built aside and renamed into place, and
/// every load re-verifies it against its manifest.
/// </summary>
public sealed class ModelRegistry(string root, SigningKeys keys, TimeProvider time)
{
    private static readonly string[] PickleExtensions = [".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"];

    public string Root { get; } = root;

    public SigningKeys Keys { get; } = keys;

    public static ModelRegistry Open(DataDirectory data) =>
        new(data.RegistryPath, new SigningKeys(data.SigningKeysPath), TimeProvider.System);

    public IReadOnlyList<string> Names() =>
        Directory.Exists(Root)
            ? Directory.GetDirectories(Root).Select(Path.GetFileName).OfType<string>()
                .Where(n => !n.StartsWith('.')).Order(StringComparer.Ordinal).ToList()
            : [];

    public IReadOnlyList<ModelManifest> Versions(string name)
    {
        var folder = VersionsFolder(ModelName.Validate(name));
        if (!Directory.Exists(folder)) return [];
        return Directory.GetDirectories(folder)
            .Select(Path.GetFileName).OfType<string>()
            .Where(v => !v.StartsWith('.'))
            .Select(v => ModelManifest.Load(Path.Combine(folder, v, ModelManifest.FileName)))
            .OrderBy(m => ModelVersion.Number(m.Version))
            .ToList();
    }

    public ModelManifest Manifest(string name, string version) =>
        ModelManifest.Load(Path.Combine(VersionFolder(name, version), ModelManifest.FileName));

    public string FilesFolder(string name, string version) => Path.Combine(VersionFolder(name, version), "files");

    public RegistryState State(string name)
    {
        var path = StatePath(ModelName.Validate(name));
        if (!File.Exists(path)) return new RegistryState(null, []);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var current = doc.RootElement.TryGetProperty("current", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        var history = doc.RootElement.TryGetProperty("history", out var h) && h.ValueKind == JsonValueKind.Array
            ? h.EnumerateArray().Select(e => e.GetString() ?? "").Where(v => v.Length > 0).ToList()
            : [];
        return new RegistryState(current, history);
    }

    /// <summary>
    /// Imports a GGUF file or a Hugging Face folder as the next version: copies it in, hashes what
    /// was stored, writes the manifest (signed when asked). Pickle files are refused.
    /// </summary>
    public async Task<ModelManifest> AddAsync(string name, string fromPath, AddOptions options, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        ModelName.Validate(name);
        var source = Path.GetFullPath(fromPath);
        var (format, sourceFiles) = Inspect(source);
        using var _ = RegistryLock.Acquire(ModelFolder(name));
        var number = Versions(name).Select(m => ModelVersion.Number(m.Version)).DefaultIfEmpty(0).Max() + 1;
        var version = ModelVersion.FromNumber(number);
        var staging = Path.Combine(VersionsFolder(name), "." + version + "-" + Guid.NewGuid().ToString("N"));
        var stagingFiles = Path.Combine(staging, "files");
        try
        {
            var entries = new List<ManifestFile>();
            long done = 0;
            foreach (var (abs, rel) in sourceFiles)
            {
                var target = Path.Combine(stagingFiles, rel);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                await CopyAsync(abs, target, ct).ConfigureAwait(false);
                var before = done;
                var sha = await FileHasher.Sha256Async(target, progress is null ? null : new Progress<long>(n => progress.Report(before + n)), ct).ConfigureAwait(false);
                var size = new FileInfo(target).Length;
                done += size;
                entries.Add(new ManifestFile(rel, size, sha));
            }
            var manifest = new ModelManifest(
                name, version, time.GetUtcNow(),
                options.Source ?? new ManifestSource("local", source, null),
                format,
                options.Architecture ?? DetectArchitecture(stagingFiles, format),
                options.Quantization,
                options.Parent,
                entries,
                null);
            if (options.Sign) manifest = Keys.Sign(manifest, options.KeyId);
            await File.WriteAllBytesAsync(Path.Combine(staging, ModelManifest.FileName), manifest.ToJsonBytes(), ct).ConfigureAwait(false);
            Directory.Move(staging, VersionFolder(name, version));
            var state = State(name);
            if (state.Current is null || options.MakeCurrent) WriteState(name, Promote(state, version));
            return manifest;
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>Makes <paramref name="version"/> the serving version; the one before goes on the roll-back history.</summary>
    public RegistryState SetCurrent(string name, string version)
    {
        if (!Directory.Exists(VersionFolder(name, version))) throw new RegistryException($"model '{name}' has no version '{version}'");
        using var _ = RegistryLock.Acquire(ModelFolder(name));
        var state = Promote(State(name), version);
        WriteState(name, state);
        return state;
    }

    /// <summary>Goes back to the version that served before the current one, in one step.</summary>
    public RegistryState Rollback(string name)
    {
        using var _ = RegistryLock.Acquire(ModelFolder(name));
        var state = State(name);
        if (state.History.Count == 0)
            throw new RegistryException($"model '{name}' has no earlier serving version to roll back to (current: {state.Current ?? "none"})");
        var previous = state.History[^1];
        var rolled = new RegistryState(previous, state.History.Take(state.History.Count - 1).ToList());
        WriteState(name, rolled);
        return rolled;
    }

    /// <summary>Hashes a version's files against its manifest (and its signature when required or present).</summary>
    public Task<VerificationReport> VerifyAsync(string name, string? version, bool requireSignature, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        version ??= State(name).Current ?? throw new RegistryException($"model '{name}' has no versions");
        var manifest = Manifest(name, version);
        return new ManifestVerifier(Keys).VerifyAsync(manifest, FilesFolder(name, version), requireSignature, progress, ct);
    }

    /// <summary>
    /// Verifies a version and returns the path to load (the GGUF file, or the safetensors folder).
    /// A version that fails verification, or that the <see cref="QuantizationGate"/> holds back,
    /// never yields a path.
    /// </summary>
    public async Task<(ModelManifest Manifest, string Path)> ResolveVerifiedAsync(string name, string? version, bool requireSignature, CancellationToken ct = default)
    {
        var (manifest, path) = await VerifiedPathAsync(name, version, requireSignature, ct).ConfigureAwait(false);
        new QuantizationGate(this, time).EnsureServable(name, manifest);
        return (manifest, path);
    }

    /// <summary>
    /// Verifies a version and returns the path of its weights, without asking whether it may
    /// serve: for tools that read a version (quantize, check), never for serving.
    /// </summary>
    public async Task<(ModelManifest Manifest, string Path)> VerifiedPathAsync(string name, string? version, bool requireSignature, CancellationToken ct = default)
    {
        var report = await VerifyAsync(name, version, requireSignature, null, ct).ConfigureAwait(false);
        if (!report.Ok)
            throw new VerificationFailedException(
                $"model '{name}' version {report.Version} failed verification and will not load: {string.Join("; ", report.Problems)}", report.Problems);
        var manifest = Manifest(name, report.Version);
        var files = FilesFolder(name, report.Version);
        var path = manifest.Format == "gguf" ? Path.Combine(files, manifest.Files.Single().Path) : files;
        return (manifest, path);
    }

    private string ModelFolder(string name) => Path.Combine(Root, ModelName.Validate(name));

    /// <summary>The model's folder (its versions, state and gate records).</summary>
    internal string ModelFolderPath(string name) => ModelFolder(name);

    private string VersionsFolder(string name) => Path.Combine(ModelFolder(name), "versions");

    private string VersionFolder(string name, string version) => Path.Combine(VersionsFolder(name), ModelVersion.Validate(version));

    private string StatePath(string name) => Path.Combine(ModelFolder(name), "state.json");

    private static RegistryState Promote(RegistryState state, string version)
    {
        if (state.Current == version) return state;
        var history = state.History.Where(v => v != version).ToList();
        if (state.Current is not null) history.Add(state.Current);
        return new RegistryState(version, history);
    }

    private void WriteState(string name, RegistryState state)
    {
        var path = StatePath(name);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        using (var stream = File.Create(temp))
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("current", state.Current);
            w.WriteStartArray("history");
            foreach (var v in state.History) w.WriteStringValue(v);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Decides the format and lists the files to import; refuses pickle and anything unrecognised.</summary>
    internal static (string Format, List<(string Abs, string Rel)> Files) Inspect(string source)
    {
        if (File.Exists(source))
        {
            RefusePickle(source);
            if (!source.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
                throw new RegistryException($"{source}: not a model file Bulwark imports (a .gguf file, or a folder with .safetensors files)");
            return ("gguf", [(source, Path.GetFileName(source))]);
        }
        if (!Directory.Exists(source)) throw new RegistryException($"{source}: no such file or folder");
        var problems = new List<string>();
        var rels = ManifestVerifier.ListFiles(source, problems);
        if (problems.Count > 0) throw new RegistryException($"{source}: {string.Join("; ", problems)}");
        foreach (var rel in rels) RefusePickle(Path.Combine(source, rel));
        var files = rels.Where(r => !r.Split('/').Any(s => s.StartsWith('.'))).Order(StringComparer.Ordinal)
            .Select(r => (Path.Combine(source, r), ManifestPaths.Validate(r, source))).ToList();
        var format = files.Any(f => f.Item2.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) ? "safetensors"
            : files.Count(f => f.Item2.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) == 1 && files.Count == 1 ? "gguf"
            : throw new RegistryException($"{source}: holds no .safetensors weights (and is not a single .gguf file)");
        return (format, files);
    }

    internal static void RefusePickle(string path)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (PickleExtensions.Contains(ext))
            throw new RegistryException(
                $"{path}: '{ext}' files are Python pickles, which can run arbitrary code when loaded; Bulwark never loads them. " +
                "Convert the checkpoint to safetensors (e.g. with transformers: model.save_pretrained(dir, safe_serialization=True)) or to GGUF (llama.cpp's convert_hf_to_gguf.py) and import that.");
    }

    private static string? DetectArchitecture(string filesFolder, string format)
    {
        if (format != "safetensors") return null;
        var config = Path.Combine(filesFolder, "config.json");
        if (!File.Exists(config) || new FileInfo(config).Length > 1 << 20) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(config));
            return doc.RootElement.TryGetProperty("model_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static async Task CopyAsync(string from, string to, CancellationToken ct)
    {
        await using var input = new FileStream(from, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan | FileOptions.Asynchronous);
        await using var output = new FileStream(to, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
        await input.CopyToAsync(output, ct).ConfigureAwait(false);
    }
}
