using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Bulwark.Server.Registry;

/// <summary>Progress of a pull: the file being fetched and bytes done of the whole.</summary>
public readonly record struct PullProgress(string File, long BytesDone, long BytesTotal);

/// <summary>
/// Pulls a model from a Hugging Face–compatible hub into the registry: resolves the revision to
/// a commit (pinned in the manifest), downloads only safe files (safetensors, GGUF, JSON,
/// tokenizer files), checks each against the hub's published SHA-256 (LFS) or Git blob id,
/// resumes interrupted downloads with HTTP ranges, and refuses pickle-only repositories.
/// The access token is sent only as an Authorization header and never logged or stored.
/// </summary>
public sealed partial class HubPuller(HttpClient http, Uri hubEndpoint, string? token, ModelRegistry registry)
{
    // Relative URIs resolve below the endpoint only when its path ends with '/'.
    private readonly Uri endpoint = hubEndpoint.AbsoluteUri.EndsWith('/') ? hubEndpoint : new Uri(hubEndpoint.AbsoluteUri + "/");

    public const string EndpointVariable = "HF_ENDPOINT";
    public const string TokenVariable = "HF_TOKEN";
    public const int MaxTreeEntries = 10_000;
    public const int MaxAttemptsPerFile = 4;
    private const int MaxJsonBytes = 16 << 20;

    private static readonly string[] SafeSuffixes =
        [".safetensors", ".gguf", ".json", "tokenizer.model", ".jinja", "merges.txt", "vocab.txt"];

    private static readonly string[] PickleSuffixes = [".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"];

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
    private static partial Regex RepoPattern();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();

    /// <summary>A hub file entry as the tree API lists it.</summary>
    internal sealed record HubFile(string Path, long Size, string GitOid, string? LfsSha256);

    public static Uri DefaultEndpoint() =>
        new(Environment.GetEnvironmentVariable(EndpointVariable) is { Length: > 0 } e ? e : "https://huggingface.co");

    public async Task<ModelManifest> PullAsync(string repo, string revision, string? name, IProgress<PullProgress>? progress = null, CancellationToken ct = default)
    {
        if (!RepoPattern().IsMatch(repo) || repo.Contains("..", StringComparison.Ordinal))
            throw new RegistryException($"repository '{repo}' is not of the form owner/name");
        if (string.IsNullOrWhiteSpace(revision) || revision.Length > 256)
            throw new RegistryException("--revision is required (a commit, branch or tag); pulls are pinned, never 'latest' by default");
        name ??= ModelName.Validate(repo[(repo.IndexOf('/') + 1)..].ToLowerInvariant());

        var commit = await ResolveCommitAsync(repo, revision, ct).ConfigureAwait(false);
        var tree = await ListFilesAsync(repo, commit, ct).ConfigureAwait(false);
        var selected = tree.Where(f => IsSafe(f.Path)).ToList();
        var weights = selected.Where(f => f.Path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || f.Path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)).ToList();
        if (weights.Count == 0)
        {
            var pickles = tree.Where(f => PickleSuffixes.Any(s => f.Path.EndsWith(s, StringComparison.OrdinalIgnoreCase))).Select(f => f.Path).ToList();
            throw new RegistryException(pickles.Count > 0
                ? $"{repo}@{commit[..12]} holds only pickle weights ({string.Join(", ", pickles.Take(5))}), which can run code when loaded; Bulwark refuses them. Ask for (or convert to) a safetensors or GGUF revision."
                : $"{repo}@{commit[..12]} holds no safetensors or GGUF weights");
        }
        // A GGUF repository often holds many quantizations: one model version is one GGUF file.
        if (weights.All(f => f.Path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) && weights.Count > 1)
            throw new RegistryException($"{repo}@{commit[..12]} holds {weights.Count} GGUF files; pull one repository per quantization or import the file with 'models add'");

        var staging = Path.Combine(registry.Root, ".downloads", repo.Replace('/', '_') + "@" + commit);
        Directory.CreateDirectory(staging);
        var total = selected.Sum(f => f.Size);
        long done = 0;
        foreach (var file in selected)
        {
            var target = Path.Combine(staging, ManifestPaths.Validate(file.Path, repo));
            var before = done;
            await DownloadVerifiedAsync(repo, commit, file, target, n => progress?.Report(new PullProgress(file.Path, before + n, total)), ct).ConfigureAwait(false);
            done += file.Size;
        }

        var source = new ManifestSource("hub", $"{endpoint.GetLeftPart(UriPartial.Authority)}/{repo}", commit);
        var from = weights.Count == 1 && weights[0].Path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) && selected.Count == 1
            ? Path.Combine(staging, weights[0].Path)
            : staging;
        var manifest = await registry.AddAsync(name, from, new AddOptions { Source = source }, null, ct).ConfigureAwait(false);
        Directory.Delete(staging, recursive: true);
        return manifest;
    }

    private async Task<string> ResolveCommitAsync(string repo, string revision, CancellationToken ct)
    {
        using var doc = await GetJsonAsync($"api/models/{repo}/revision/{Uri.EscapeDataString(revision)}", ct).ConfigureAwait(false);
        var sha = doc.RootElement.TryGetProperty("sha", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
        if (sha is null || !CommitPattern().IsMatch(sha))
            throw new RegistryException($"the hub did not resolve {repo}@{revision} to a commit (field 'sha' missing or not 40 hex digits)");
        return sha;
    }

    internal async Task<List<HubFile>> ListFilesAsync(string repo, string commit, CancellationToken ct)
    {
        using var doc = await GetJsonAsync($"api/models/{repo}/tree/{commit}?recursive=true", ct).ConfigureAwait(false);
        if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new RegistryException($"the hub's file list for {repo} is not an array");
        if (doc.RootElement.GetArrayLength() > MaxTreeEntries)
            throw new RegistryException($"{repo} lists {doc.RootElement.GetArrayLength()} files; the limit is {MaxTreeEntries}");
        var files = new List<HubFile>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            if (e.TryGetProperty("type", out var t) && t.GetString() != "file") continue;
            var path = e.GetProperty("path").GetString() ?? throw new RegistryException($"{repo}: a file entry has no path");
            var size = e.GetProperty("size").GetInt64();
            var oid = e.TryGetProperty("oid", out var o) ? o.GetString() ?? "" : "";
            string? lfs = null;
            if (e.TryGetProperty("lfs", out var l) && l.ValueKind == JsonValueKind.Object)
            {
                lfs = l.GetProperty("oid").GetString();
                if (lfs is null || !Sha256Hex.IsValid(lfs)) throw new RegistryException($"{repo}: {path}: LFS oid is not a SHA-256");
                size = l.TryGetProperty("size", out var ls) ? ls.GetInt64() : size;
            }
            if (size < 0) throw new RegistryException($"{repo}: {path}: negative size {size}");
            files.Add(new HubFile(path, size, oid, lfs));
        }
        return files;
    }

    private async Task DownloadVerifiedAsync(string repo, string commit, HubFile file, string target, Action<long> progress, CancellationToken ct)
    {
        if (File.Exists(target) && await MatchesAsync(file, target, ct).ConfigureAwait(false)) { progress(file.Size); return; }
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var partial = target + ".partial";
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await DownloadOnceAsync(repo, commit, file, partial, progress, ct).ConfigureAwait(false);
                break;
            }
            catch (Exception e) when ((e is IOException or HttpRequestException) && attempt < MaxAttemptsPerFile && !ct.IsCancellationRequested)
            {
                // Keep the partial file: the next attempt resumes from its length.
            }
        }
        var length = new FileInfo(partial).Length;
        if (length != file.Size)
        {
            File.Delete(partial);
            throw new RegistryException($"{repo}: {file.Path}: downloaded {length} bytes, the hub lists {file.Size}");
        }
        if (!await MatchesAsync(file, partial, ct).ConfigureAwait(false))
        {
            File.Delete(partial);
            throw new RegistryException($"{repo}: {file.Path}: content does not match the hub's published hash (tampered or corrupted in transit); nothing was imported");
        }
        File.Move(partial, target, overwrite: true);
    }

    private async Task DownloadOnceAsync(string repo, string commit, HubFile file, string partial, Action<long> progress, CancellationToken ct)
    {
        var have = File.Exists(partial) ? new FileInfo(partial).Length : 0;
        if (have > file.Size) { File.Delete(partial); have = 0; }
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(endpoint, $"{repo}/resolve/{commit}/{EscapePath(file.Path)}"));
        Authorize(request);
        if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.OK) have = 0; // the server ignored the range: start over
        else if (response.StatusCode != HttpStatusCode.PartialContent)
            throw new RegistryException($"{repo}: {file.Path}: the hub answered {(int)response.StatusCode} {response.ReasonPhrase}");
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using var output = new FileStream(partial, have > 0 ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
        var buffer = new byte[1 << 20];
        int read;
        while ((read = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            if (have + read > file.Size) throw new RegistryException($"{repo}: {file.Path}: the hub sent more than the {file.Size} bytes it listed");
            await output.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
            have += read;
            progress(have);
        }
        if (have != file.Size) throw new IOException($"{file.Path}: transfer ended at {have} of {file.Size} bytes");
    }

    private static async Task<bool> MatchesAsync(HubFile file, string path, CancellationToken ct)
    {
        if (new FileInfo(path).Length != file.Size) return false;
        return file.LfsSha256 is { } sha
            ? await FileHasher.Sha256Async(path, null, ct).ConfigureAwait(false) == sha
            : await FileHasher.GitBlobSha1Async(path, ct).ConfigureAwait(false) == file.GitOid;
    }

    private async Task<JsonDocument> GetJsonAsync(string relative, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(endpoint, relative));
        Authorize(request);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.NotFound)
            throw new RegistryException($"the hub has no {relative.Split('?')[0]} (check the repository and revision, and HF_TOKEN for private repositories)");
        if (!response.IsSuccessStatusCode)
            throw new RegistryException($"the hub answered {(int)response.StatusCode} {response.ReasonPhrase} for {relative.Split('?')[0]}");
        if (response.Content.Headers.ContentLength > MaxJsonBytes)
            throw new RegistryException($"the hub's answer for {relative.Split('?')[0]} is larger than {MaxJsonBytes} bytes");
        await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        using var limited = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while ((read = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            if (limited.Length + read > MaxJsonBytes) throw new RegistryException($"the hub's answer for {relative.Split('?')[0]} is larger than {MaxJsonBytes} bytes");
            limited.Write(buffer, 0, read);
        }
        try
        {
            return JsonDocument.Parse(limited.ToArray());
        }
        catch (JsonException e)
        {
            throw new RegistryException($"the hub's answer for {relative.Split('?')[0]} is not JSON ({e.Message})");
        }
    }

    private void Authorize(HttpRequestMessage request)
    {
        if (!string.IsNullOrEmpty(token)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    private static bool IsSafe(string path) =>
        !path.Split('/').Any(s => s.StartsWith('.')) && SafeSuffixes.Any(s => path.EndsWith(s, StringComparison.OrdinalIgnoreCase));

    private static string EscapePath(string path) => string.Join('/', path.Split('/').Select(Uri.EscapeDataString));
}
