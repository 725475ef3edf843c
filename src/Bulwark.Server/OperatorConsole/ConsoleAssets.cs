using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Bulwark.Server.OperatorConsole;

/// <summary>The console's one script and one stylesheet, embedded in the assembly (no CDN, works offline).</summary>
public static class ConsoleAssets
{
    private static readonly Dictionary<string, (byte[] Bytes, string Type, EntityTagHeaderValue Tag)> Files = new(StringComparer.Ordinal)
    {
        ["console.js"] = Load("console.js", "text/javascript; charset=utf-8"),
        ["console.css"] = Load("console.css", "text/css; charset=utf-8"),
    };

    public static IResult Serve(string name) =>
        Files.TryGetValue(name, out var file)
            ? Results.Bytes(file.Bytes, file.Type, entityTag: file.Tag)
            : Results.NotFound();

    private static (byte[], string, EntityTagHeaderValue) Load(string name, string type)
    {
        using var stream = typeof(ConsoleAssets).Assembly.GetManifestResourceStream("Bulwark.Server.OperatorConsole.Assets." + name)
            ?? throw new InvalidOperationException($"the console asset {name} is not embedded in the assembly");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        var bytes = copy.ToArray();
        return (bytes, type, new EntityTagHeaderValue($"\"{Convert.ToHexString(SHA256.HashData(bytes))[..16]}\""));
    }
}
