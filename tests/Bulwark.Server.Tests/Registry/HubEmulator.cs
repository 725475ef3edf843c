using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Registry;

/// <summary>
/// A loopback stand-in for a Hugging Face–compatible hub: the revision, tree and resolve routes,
/// LFS SHA-256 and Git blob ids as the real one publishes them, HTTP ranges, and switches to
/// tamper with a file, cut a transfer short once, or require a token.
/// </summary>
internal sealed class HubEmulator : IAsyncDisposable
{
    public const string Commit = "0123456789abcdef0123456789abcdef01234567";
    private readonly WebApplication _app;
    private readonly Dictionary<string, Dictionary<string, byte[]>> _repos = new();

    public HubEmulator()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _app = builder.Build();
        _app.MapGet("/api/models/{owner}/{name}/revision/{rev}", (string owner, string name, string rev, HttpContext ctx) =>
        {
            if (!Authorized(ctx)) return Results.Unauthorized();
            if (!_repos.ContainsKey(owner + "/" + name) || (rev != "main" && rev != Commit)) return Results.NotFound();
            return Results.Json(new { id = owner + "/" + name, sha = Commit });
        });
        _app.MapGet("/api/models/{owner}/{name}/tree/{rev}", (string owner, string name, string rev, HttpContext ctx) =>
        {
            if (!Authorized(ctx)) return Results.Unauthorized();
            if (!_repos.TryGetValue(owner + "/" + name, out var files) || rev != Commit) return Results.NotFound();
            return Results.Json(files.Select(kv => Entry(kv.Key, kv.Value)).ToList());
        });
        _app.MapGet("/{owner}/{name}/resolve/{rev}/{**path}", async (string owner, string name, string rev, string path, HttpContext ctx) =>
        {
            if (!Authorized(ctx)) { ctx.Response.StatusCode = 401; return; }
            Requests.Add(path + (ctx.Request.Headers.Range.Count > 0 ? " " + ctx.Request.Headers.Range : ""));
            if (!_repos.TryGetValue(owner + "/" + name, out var files) || rev != Commit || !files.TryGetValue(path, out var content))
            {
                ctx.Response.StatusCode = 404;
                return;
            }
            if (Tampered.TryGetValue(path, out var swapped)) content = swapped;
            long start = 0;
            var range = ctx.Request.GetTypedHeaders().Range;
            if (range is { Ranges.Count: 1 } && range.Ranges.First().From is { } from)
            {
                start = from;
                ctx.Response.StatusCode = 206;
                ctx.Response.Headers.ContentRange = $"bytes {start}-{content.Length - 1}/{content.Length}";
            }
            ctx.Response.ContentLength = content.Length - start;
            if (TruncateOnce.TryRemove(path, out _))
            {
                var half = (int)(content.Length - start) / 2;
                await ctx.Response.Body.WriteAsync(content.AsMemory((int)start, half));
                await ctx.Response.Body.FlushAsync();
                ctx.Abort();
                return;
            }
            await ctx.Response.Body.WriteAsync(content.AsMemory((int)start));
        });
        _app.StartAsync().GetAwaiter().GetResult();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Endpoint = new Uri(address);
    }

    public Uri Endpoint { get; }

    /// <summary>Files whose served bytes differ from what the tree publishes.</summary>
    public ConcurrentDictionary<string, byte[]> Tampered { get; } = new();

    /// <summary>Files whose next download is cut off half way.</summary>
    public ConcurrentDictionary<string, bool> TruncateOnce { get; } = new();

    /// <summary>Every download request: path, plus the Range header when one was sent.</summary>
    public ConcurrentBag<string> Requests { get; } = new();

    /// <summary>When set, every route requires "Authorization: Bearer {token}".</summary>
    public string? RequiredToken { get; set; }

    public void AddRepo(string repo, Dictionary<string, byte[]> files) => _repos[repo] = files;

    private bool Authorized(HttpContext ctx) =>
        RequiredToken is null || ctx.Request.Headers.Authorization.ToString() == "Bearer " + RequiredToken;

    private static object Entry(string path, byte[] content)
    {
        var gitOid = Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content]));
        // Like the real hub: weights are LFS objects (SHA-256 published), small text files are plain Git blobs.
        var lfs = path.EndsWith(".json", StringComparison.Ordinal) ? null
            : new { oid = Convert.ToHexStringLower(SHA256.HashData(content)), size = content.Length, pointerSize = 130 };
        return new { type = "file", path, size = lfs is null ? content.Length : 130, oid = gitOid, lfs };
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
