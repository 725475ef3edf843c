using System.Net;

namespace Bulwark.Server.Security;

/// <summary>
/// The blocked ranges this replica enforces: an immutable snapshot swapped whole when the store
/// changes, so the per-request check takes no lock.
/// </summary>
public sealed class IpBlockList
{
    private volatile CidrRange[] _ranges = [];

    public IReadOnlyList<CidrRange> Ranges => _ranges;

    public void Replace(IEnumerable<CidrRange> ranges) => _ranges = ranges.ToArray();

    public bool IsBlocked(IPAddress? address)
    {
        if (address is null) return false;
        foreach (var range in _ranges)
            if (range.Contains(address)) return true;
        return false;
    }
}
