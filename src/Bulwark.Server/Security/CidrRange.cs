using System.Net;
using System.Net.Sockets;

namespace Bulwark.Server.Security;

/// <summary>
/// An address range such as <c>203.0.113.0/24</c>, <c>2001:db8::/32</c> or a single address.
/// IPv4-mapped IPv6 addresses (<c>::ffff:203.0.113.7</c>, what a dual-stack socket reports) are
/// matched as the IPv4 address they carry, so a block cannot be dodged by the address family.
/// </summary>
public sealed class CidrRange
{
    private readonly byte[] _network;

    private CidrRange(byte[] network, int prefixLength)
    {
        _network = network;
        PrefixLength = prefixLength;
    }

    public int PrefixLength { get; }

    public AddressFamily Family => _network.Length == 4 ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;

    /// <summary>Canonical text: network address with host bits cleared, then /prefix.</summary>
    public override string ToString() => $"{new IPAddress(_network)}/{PrefixLength}";

    public static CidrRange Parse(string text)
    {
        if (!TryParse(text, out var range, out var error)) throw new FormatException(error);
        return range;
    }

    public static bool TryParse(string text, out CidrRange range, out string error)
    {
        range = null!;
        var slash = text.IndexOf('/');
        var addressText = slash < 0 ? text.Trim() : text[..slash].Trim();
        if (!IPAddress.TryParse(addressText, out var address) || addressText.Contains('%'))
        {
            error = $"'{text}' is not an IP address or CIDR range (e.g. 203.0.113.0/24, 2001:db8::/32)";
            return false;
        }
        var bytes = Normalise(address).GetAddressBytes();
        var max = bytes.Length * 8;
        var prefix = max;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), System.Globalization.NumberStyles.None, null, out prefix) || prefix > max))
        {
            error = $"prefix length in '{text}' must be between 0 and {max}";
            return false;
        }
        if (address.IsIPv4MappedToIPv6 && slash >= 0)
            prefix = Math.Max(0, prefix - 96);
        for (var bit = prefix; bit < max; bit++) bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        range = new CidrRange(bytes, prefix);
        error = "";
        return true;
    }

    public bool Contains(IPAddress address)
    {
        var normalised = Normalise(address);
        Span<byte> bytes = stackalloc byte[16];
        if (!normalised.TryWriteBytes(bytes, out var written) || written != _network.Length) return false;
        var fullBytes = PrefixLength / 8;
        if (!bytes[..fullBytes].SequenceEqual(_network.AsSpan(0, fullBytes))) return false;
        var rest = PrefixLength % 8;
        if (rest == 0) return true;
        var mask = (byte)(0xFF << (8 - rest));
        return (bytes[fullBytes] & mask) == _network[fullBytes];
    }

    private static IPAddress Normalise(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
