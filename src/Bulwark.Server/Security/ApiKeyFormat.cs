using System.Security.Cryptography;

namespace Bulwark.Server.Security;

/// <summary>
/// The text form of a key: <c>bwk_&lt;id&gt;_&lt;secret&gt;</c> for API keys and <c>bwa_&lt;id&gt;_&lt;secret&gt;</c>
/// for admin keys. The prefix makes a leaked key recognisable to secret scanners and to our own
/// log redactor; the id is public (it names the key in lists, audit and limits); only the whole
/// string is a credential. Id: 12 base32 characters (60 bits); secret: 32 bytes from the CSPRNG
/// as 52 base32 characters (lower case, so it survives case-insensitive systems unchanged).
/// </summary>
public static class ApiKeyFormat
{
    public const string ApiPrefix = "bwk_";
    public const string AdminPrefix = "bwa_";
    public const int IdLength = 12;
    public const int SecretLength = 52;
    public const int KeyLength = 4 + IdLength + 1 + SecretLength;
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

    /// <summary>A new key (text) and its public id.</summary>
    public static (string Id, string Key) Generate(bool admin)
    {
        var id = RandomBase32(IdLength);
        var secret = RandomBase32(SecretLength);
        return (id, (admin ? AdminPrefix : ApiPrefix) + id + "_" + secret);
    }

    /// <summary>
    /// Splits a presented key into its id and admin flag without allocating; false when the text
    /// is not exactly a well-formed key (wrong prefix, length or alphabet).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> key, out ReadOnlySpan<char> id, out bool admin)
    {
        id = default;
        admin = false;
        if (key.Length != KeyLength || key[4 + IdLength] != '_') return false;
        if (key.StartsWith(AdminPrefix, StringComparison.Ordinal)) admin = true;
        else if (!key.StartsWith(ApiPrefix, StringComparison.Ordinal)) return false;
        var body = key[4..];
        for (var i = 0; i < body.Length; i++)
        {
            if (i == IdLength) continue;
            if (!IsAlphabet(body[i])) return false;
        }
        id = body[..IdLength];
        return true;
    }

    private static bool IsAlphabet(char c) => c is >= 'a' and <= 'z' or >= '2' and <= '7';

    private static string RandomBase32(int length)
    {
        // 32 symbols divide 256 evenly, so taking the low 5 bits of each random byte is unbiased.
        Span<byte> bytes = stackalloc byte[length];
        RandomNumberGenerator.Fill(bytes);
        return string.Create(length, bytes.ToArray(), static (chars, b) =>
        {
            for (var i = 0; i < chars.Length; i++) chars[i] = Alphabet[b[i] & 31];
        });
    }
}
