namespace Bulwark.Server.Storage;

/// <summary>One blocked address range as stored.</summary>
public sealed record IpBlock(string Cidr, string Reason, DateTimeOffset CreatedAt);

/// <summary>The <c>ip_blocks</c> table.</summary>
public sealed class IpBlockStore(Database database)
{
    /// <summary>Adds or re-labels a block; <paramref name="cidr"/> must already be normalised.</summary>
    public async Task AddAsync(IpBlock block, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await connection.ExecuteAsync(
            "INSERT INTO ip_blocks (cidr, reason, created_at) VALUES (@cidr, @reason, @at) ON CONFLICT (cidr) DO UPDATE SET reason = excluded.reason",
            ct, ("@cidr", block.Cidr), ("@reason", block.Reason), ("@at", block.CreatedAt.ToUnixTimeMilliseconds()));
    }

    public async Task<bool> RemoveAsync(string cidr, CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        return await connection.ExecuteAsync("DELETE FROM ip_blocks WHERE cidr = @cidr", ct, ("@cidr", cidr)) > 0;
    }

    public async Task<IReadOnlyList<IpBlock>> ListAsync(CancellationToken ct = default)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var command = connection.Command("SELECT cidr, reason, created_at FROM ip_blocks ORDER BY cidr");
        await using var reader = await command.ExecuteReaderAsync(ct);
        var blocks = new List<IpBlock>();
        while (await reader.ReadAsync(ct))
            blocks.Add(new IpBlock(reader.GetString(0), reader.GetString(1), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2))));
        return blocks;
    }
}
