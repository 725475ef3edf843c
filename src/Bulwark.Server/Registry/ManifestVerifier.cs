namespace Bulwark.Server.Registry;

/// <summary>The outcome of checking a version's files (and signature) against its manifest.</summary>
public sealed record VerificationReport(string Name, string Version, IReadOnlyList<string> Problems, long BytesHashed)
{
    public bool Ok => Problems.Count == 0;
}

/// <summary>
/// Re-hashes every file of a version and compares it with the manifest: a missing, extra,
/// resized or changed file, a symbolic link, or (when required or present) a bad signature is a
/// problem. Nothing is trusted that was not hashed in this call.
/// </summary>
public sealed class ManifestVerifier(SigningKeys keys)
{
    public async Task<VerificationReport> VerifyAsync(
        ModelManifest manifest, string filesFolder, bool requireSignature,
        IProgress<long>? progress = null, CancellationToken ct = default)
    {
        var problems = new List<string>();
        if (manifest.Signature is not null || requireSignature)
        {
            if (keys.CheckSignature(manifest) is { } why) problems.Add("signature: " + why);
        }

        var listed = new HashSet<string>(manifest.Files.Select(f => f.Path), StringComparer.Ordinal);
        foreach (var present in ListFiles(filesFolder, problems))
        {
            if (!listed.Contains(present)) problems.Add($"extra file not in the manifest: {present}");
        }

        long done = 0;
        foreach (var file in manifest.Files.OrderBy(f => f.Path, StringComparer.Ordinal))
        {
            var full = Path.Combine(filesFolder, file.Path);
            var info = new FileInfo(full);
            if (!info.Exists) { problems.Add($"missing file: {file.Path}"); continue; }
            if (info.LinkTarget is not null) { problems.Add($"symbolic link not allowed: {file.Path}"); continue; }
            if (info.Length != file.Size)
            {
                problems.Add($"size changed: {file.Path} is {info.Length} bytes, the manifest says {file.Size}");
                continue;
            }
            var before = done;
            var sha = await FileHasher.Sha256Async(full, progress is null ? null : new Progress<long>(n => progress.Report(before + n)), ct).ConfigureAwait(false);
            done += info.Length;
            if (sha != file.Sha256) problems.Add($"content changed: {file.Path} has SHA-256 {sha}, the manifest says {file.Sha256}");
        }
        return new VerificationReport(manifest.Name, manifest.Version, problems, done);
    }

    /// <summary>Relative paths (forward slashes) of every file under the folder; linked folders are reported, never walked.</summary>
    internal static List<string> ListFiles(string folder, List<string>? problems = null)
    {
        var found = new List<string>();
        if (Directory.Exists(folder)) Walk(new DirectoryInfo(folder), folder, found, problems);
        return found;
    }

    private static void Walk(DirectoryInfo dir, string root, List<string> found, List<string>? problems)
    {
        foreach (var entry in dir.EnumerateFileSystemInfos())
        {
            var rel = Path.GetRelativePath(root, entry.FullName).Replace('\\', '/');
            if (entry is FileInfo) { found.Add(rel); continue; }
            // A linked folder could lead anywhere on the disk: never walk into it.
            if (entry.LinkTarget is not null) { problems?.Add($"symbolic link not allowed: {rel}"); continue; }
            Walk((DirectoryInfo)entry, root, found, problems);
        }
    }
}
