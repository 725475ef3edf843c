using System.Text.Json;

namespace Bulwark.Server.Registry;

/// <summary>One file of a model version: its path relative to the version folder, size and SHA-256.</summary>
public sealed record ManifestFile(string Path, long Size, string Sha256);

/// <summary>Where a version came from: a hub repository at a pinned commit, a local path, or another version.</summary>
public sealed record ManifestSource(string Kind, string Location, string? Revision);

/// <summary>An Ed25519 signature over <see cref="ModelManifest.CanonicalBytes"/>, and the id of the key that made it.</summary>
public sealed record ManifestSignature(string KeyId, string Algorithm, string Value);

/// <summary>
/// The record of one model version: every file with size and SHA-256, where it came from, what
/// it is, its parent version, and optionally a signature. The signature covers the canonical
/// form (<see cref="CanonicalBytes"/>): every field but the signature, in a fixed order, files
/// sorted by path, no whitespace — so the same manifest always signs to the same bytes.
/// </summary>
public sealed record ModelManifest(
    string Name,
    string Version,
    DateTimeOffset Created,
    ManifestSource Source,
    string Format,
    string? Architecture,
    string? Quantization,
    string? Parent,
    IReadOnlyList<ManifestFile> Files,
    ManifestSignature? Signature)
{
    public const string FileName = "manifest.json";
    public const int SchemaVersion = 1;

    /// <summary>Manifests larger than this are refused before parsing.</summary>
    public const int MaxManifestBytes = 4 * 1024 * 1024;

    /// <summary>At most this many files in one version.</summary>
    public const int MaxFiles = 10_000;

    public long TotalBytes => Files.Sum(f => f.Size);

    /// <summary>The bytes a signature covers: the manifest without its signature, in canonical form.</summary>
    public byte[] CanonicalBytes() => Serialize(includeSignature: false, indented: false);

    /// <summary>The manifest as written to <c>manifest.json</c> (indented, signature included).</summary>
    public byte[] ToJsonBytes() => Serialize(includeSignature: true, indented: true);

    private byte[] Serialize(bool includeSignature, bool indented)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = indented }))
        {
            w.WriteStartObject();
            w.WriteNumber("schema", SchemaVersion);
            w.WriteString("name", Name);
            w.WriteString("version", Version);
            w.WriteString("created", Created.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ"));
            w.WriteStartObject("source");
            w.WriteString("kind", Source.Kind);
            w.WriteString("location", Source.Location);
            WriteNullable(w, "revision", Source.Revision);
            w.WriteEndObject();
            w.WriteString("format", Format);
            WriteNullable(w, "architecture", Architecture);
            WriteNullable(w, "quantization", Quantization);
            WriteNullable(w, "parent", Parent);
            w.WriteStartArray("files");
            foreach (var f in Files.OrderBy(f => f.Path, StringComparer.Ordinal))
            {
                w.WriteStartObject();
                w.WriteString("path", f.Path);
                w.WriteNumber("size", f.Size);
                w.WriteString("sha256", f.Sha256);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (includeSignature && Signature is not null)
            {
                w.WriteStartObject("signature");
                w.WriteString("key_id", Signature.KeyId);
                w.WriteString("algorithm", Signature.Algorithm);
                w.WriteString("value", Signature.Value);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static void WriteNullable(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name);
        else w.WriteString(name, value);
    }

    /// <summary>Reads and validates a manifest file; every problem names the file and the field.</summary>
    public static ModelManifest Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new RegistryException($"{path}: manifest not found");
        if (info.Length > MaxManifestBytes)
            throw new RegistryException($"{path}: manifest is {info.Length} bytes; the limit is {MaxManifestBytes}");
        return Parse(File.ReadAllBytes(path), path);
    }

    public static ModelManifest Parse(ReadOnlySpan<byte> json, string origin)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new RegistryException($"{origin}: manifest is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new RegistryException($"{origin}: manifest must be a JSON object");
            var schema = Int(root, "schema", origin);
            if (schema != SchemaVersion)
                throw new RegistryException($"{origin}: field 'schema' is {schema}; this version of Bulwark reads schema {SchemaVersion}");
            var sourceEl = Obj(root, "source", origin);
            var source = new ManifestSource(Str(sourceEl, "kind", origin), Str(sourceEl, "location", origin), OptStr(sourceEl, "revision", origin));
            var filesEl = root.TryGetProperty("files", out var fe) && fe.ValueKind == JsonValueKind.Array
                ? fe
                : throw new RegistryException($"{origin}: field 'files' must be an array");
            if (filesEl.GetArrayLength() > MaxFiles)
                throw new RegistryException($"{origin}: field 'files' has {filesEl.GetArrayLength()} entries; the limit is {MaxFiles}");
            var files = new List<ManifestFile>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var f in filesEl.EnumerateArray())
            {
                var p = ManifestPaths.Validate(Str(f, "path", origin), origin);
                if (!seen.Add(p)) throw new RegistryException($"{origin}: file '{p}' is listed twice");
                var size = f.TryGetProperty("size", out var se) && se.ValueKind == JsonValueKind.Number && se.TryGetInt64(out var s) && s >= 0
                    ? s
                    : throw new RegistryException($"{origin}: file '{p}': field 'size' must be a non-negative integer");
                var sha = Str(f, "sha256", origin);
                if (!Sha256Hex.IsValid(sha)) throw new RegistryException($"{origin}: file '{p}': field 'sha256' is not 64 lowercase hex digits");
                files.Add(new ManifestFile(p, size, sha));
            }
            ManifestSignature? signature = null;
            if (root.TryGetProperty("signature", out var sig) && sig.ValueKind == JsonValueKind.Object)
                signature = new ManifestSignature(Str(sig, "key_id", origin), Str(sig, "algorithm", origin), Str(sig, "value", origin));
            var createdText = Str(root, "created", origin);
            if (!DateTimeOffset.TryParse(createdText, System.Globalization.CultureInfo.InvariantCulture,
                    System.Globalization.DateTimeStyles.AssumeUniversal, out var created))
                throw new RegistryException($"{origin}: field 'created' is not a timestamp: '{createdText}'");
            return new ModelManifest(
                ModelName.Validate(Str(root, "name", origin)),
                ModelVersion.Validate(Str(root, "version", origin)),
                created,
                source,
                Str(root, "format", origin),
                OptStr(root, "architecture", origin),
                OptStr(root, "quantization", origin),
                OptStr(root, "parent", origin),
                files,
                signature);
        }
    }

    private static JsonElement Obj(JsonElement e, string name, string origin) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Object
            ? v
            : throw new RegistryException($"{origin}: field '{name}' must be an object");

    private static string Str(JsonElement e, string name, string origin) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()!
            : throw new RegistryException($"{origin}: field '{name}' must be a string");

    private static string? OptStr(JsonElement e, string name, string origin)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new RegistryException($"{origin}: field '{name}' must be a string or null");
    }

    private static int Int(JsonElement e, string name, string origin) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i)
            ? i
            : throw new RegistryException($"{origin}: field '{name}' must be an integer");
}
