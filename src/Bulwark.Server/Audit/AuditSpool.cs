using System.Buffers;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Bulwark.Server.Storage;

namespace Bulwark.Server.Audit;

/// <summary>
/// Audit records the store refused, kept in one append-only file in the data directory
/// (<c>state/audit.spool</c>) until the store takes them (docs/reliability.md). One line per record,
/// <c>crc32 json</c>. Crash-safe: a batch is one write at the end of the last whole line, then an
/// fsync, and only then is the batch counted as kept; a write that failed part-way (the disk filled)
/// is cut off again, so later batches always start on a line of their own, and a line torn by a
/// crash mid-write fails its checksum and is skipped (and counted) when read. Reading never
/// consumes: the file is emptied only after every record in it reached the store, and the store
/// skips records it already has (<see cref="AuditRecord.Id"/>), so a replay cut short by a crash
/// is simply run again. The file's creation is made durable as well (its directory is fsynced).
/// </summary>
internal sealed class AuditSpool(string path, long limit) : IDisposable
{
    public const string FileName = "audit.spool";

    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };
    private FileStream? _file;
    // Where the last whole line ends: appends start here, after cutting off whatever a failed write or a
    // crash left beyond it.
    private long _length = WholeLines(path);

    public string Path { get; } = path;

    /// <summary>The size limit in bytes; records that would pass it are not kept.</summary>
    public long Limit { get; } = limit;

    /// <summary>Bytes of records waiting for the store.</summary>
    public long Length => _length;

    public bool IsEmpty => _length == 0;

    /// <summary>Appends as many of <paramref name="records"/> as fit under the limit, and fsyncs them.</summary>
    /// <returns>How many were kept (the first ones); the rest did not fit.</returns>
    /// <exception cref="IOException">Nothing was kept: the file could not be written (the disk is full, or gone).</exception>
    public int Append(IReadOnlyList<AuditRecord> records)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var kept = 0;
        foreach (var record in records)
        {
            var json = JsonSerializer.SerializeToUtf8Bytes(record, Json);
            var line = Encoding.ASCII.GetBytes(Crc32.HashToUInt32(json).ToString("x8", CultureInfo.InvariantCulture) + " ");
            if (_length + buffer.WrittenCount + line.Length + json.Length + 1 > Limit) break;
            buffer.Write(line);
            buffer.Write(json);
            buffer.Write("\n"u8);
            kept++;
        }
        if (kept == 0) return 0;
        var file = Open();
        try
        {
            if (file.Length != _length) file.SetLength(_length);
            file.Position = _length;
            file.Write(buffer.WrittenSpan);
            file.Flush(flushToDisk: true);
            _length += buffer.WrittenCount;
            return kept;
        }
        catch (IOException)
        {
            // Cut a partial write off, so the next batch starts on a line of its own; truncating frees space, so
            // it works on a full disk. If even that fails, appends still start at _length and readers skip the rest.
            try { file.SetLength(_length); file.Flush(flushToDisk: true); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>The records kept so far, in batches of at most <paramref name="batchSize"/>; damaged lines are skipped and counted in <paramref name="damaged"/>.</summary>
    public IEnumerable<List<AuditRecord>> Read(int batchSize, StrongBox<long> damaged)
    {
        if (_length == 0) yield break;
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var batch = new List<AuditRecord>(batchSize);
        long read = 0;
        while (read < _length && reader.ReadLine() is { } line)
        {
            read += Encoding.UTF8.GetByteCount(line) + 1;
            if (Parse(line) is { } record) batch.Add(record);
            else damaged.Value++;
            if (batch.Count < batchSize) continue;
            yield return batch;
            batch = new List<AuditRecord>(batchSize);
        }
        if (batch.Count > 0) yield return batch;
    }

    /// <summary>Empties the file: every record in it reached the store.</summary>
    public void Clear()
    {
        var file = Open();
        file.SetLength(0);
        file.Flush(flushToDisk: true);
        _length = 0;
    }

    /// <summary>The length of the file up to its last line break (0 when there is no file).</summary>
    private static long WholeLines(string path)
    {
        if (!File.Exists(path)) return 0;
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var chunk = new byte[4096];
        for (var end = file.Length; end > 0;)
        {
            var n = (int)Math.Min(chunk.Length, end);
            file.Position = end - n;
            file.ReadExactly(chunk, 0, n);
            var last = chunk.AsSpan(0, n).LastIndexOf((byte)'\n');
            if (last >= 0) return end - n + last + 1;
            end -= n;
        }
        return 0;
    }

    private FileStream Open()
    {
        if (_file is not null) return _file;
        var created = !File.Exists(Path);
        _file = new FileStream(Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1, FileOptions.None);
        // The new file's directory entry is made durable too, or a power loss could take the file and the
        // records fsynced into it. Before the first record is counted as kept.
        if (created) DirectorySync.Flush(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        return _file;
    }

    private static AuditRecord? Parse(string line)
    {
        if (line.Length < 10 || line[8] != ' ' || !uint.TryParse(line.AsSpan(0, 8), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var crc))
            return null;
        var json = Encoding.UTF8.GetBytes(line[9..]);
        if (Crc32.HashToUInt32(json) != crc) return null;
        try { return JsonSerializer.Deserialize<AuditRecord>(json, Json); }
        catch (JsonException) { return null; }
    }

    public void Dispose() => _file?.Dispose();
}
