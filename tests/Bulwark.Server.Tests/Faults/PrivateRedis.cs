using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// A redis-server of one test's own, on a free port, its append-only file fsynced on every write
/// (<c>appendfsync always</c>), so a SIGKILL loses nothing and a restart finds every key as it was:
/// the test then sees what Bulwark does, not what a Redis without persistence forgets.
/// </summary>
internal sealed class PrivateRedis : PrivateServer
{
    private PrivateRedis() : base("redis") { }

    /// <summary>The StackExchange.Redis configuration string for it.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    public static async Task<PrivateRedis> StartNewAsync()
    {
        var redis = new PrivateRedis();
        try { await redis.StartAsync(); }
        catch { await redis.DisposeAsync(); throw; }
        return redis;
    }

    protected override ProcessStartInfo StartInfo() => new(Require("redis-server", "redis-server"),
        ["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", Folder,
         "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no", "--logfile", Path.Combine(Folder, "redis.log")]);

    protected override async Task<bool> AnswersAsync()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await socket.ConnectAsync(IPAddress.Loopback, Port, timeout.Token);
            await socket.SendAsync("PING\r\n"u8.ToArray(), timeout.Token);
            var buffer = new byte[64];
            var n = await socket.ReceiveAsync(buffer, timeout.Token);
            // "-LOADING" while the append-only file is read back: not up yet.
            return Encoding.ASCII.GetString(buffer, 0, n).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException) { return false; }
    }

    protected override string Log()
    {
        var path = Path.Combine(Folder, "redis.log");
        return File.Exists(path) ? "\nredis.log:\n" + File.ReadAllText(path) : "";
    }
}
