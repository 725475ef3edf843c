using System.Net;
using System.Net.Sockets;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>
/// A TCP proxy on 127.0.0.1 between the gateway and one upstream, which misbehaves on demand as a
/// network or a dying engine would: reset every connection, swallow requests and never answer, answer
/// garbage, drip the response a byte at a time, or cut the response after a number of bytes. The
/// fault is chosen per connection, when it is accepted.
/// </summary>
internal sealed class FaultProxy : IAsyncDisposable
{
    public enum Fault { None, Reset, BlackHole, Garbage, SlowDrip, CutResponse }

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Uri _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<TcpClient, byte> _open = new();
    private volatile Fault _mode;
    private int _connections;

    public FaultProxy(Uri target)
    {
        _target = target;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    /// <summary>The proxy's address, with the target's path (e.g. <c>http://127.0.0.1:PORT/v1</c>).</summary>
    public Uri Address(string path = "") => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/{path.TrimStart('/')}");

    /// <summary>The fault new connections get; setting it also resets every connection open now, so a pooled one cannot bypass it.</summary>
    public Fault Mode
    {
        get => _mode;
        set
        {
            _mode = value;
            foreach (var open in _open.Keys)
            {
                try
                {
                    open.Client.LingerState = new LingerOption(true, 0);
                    open.Close();
                }
                catch (Exception e) when (e is ObjectDisposedException or SocketException) { }
            }
        }
    }

    /// <summary>For <see cref="Fault.CutResponse"/>: response bytes passed on before the connection is reset.</summary>
    public int CutAfterBytes { get; set; } = 200;

    public int Connections => Volatile.Read(ref _connections);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            Interlocked.Increment(ref _connections);
            _ = Task.Run(() => ServeAsync(client, Mode));
        }
    }

    private async Task ServeAsync(TcpClient client, Fault fault)
    {
        using var owned = client;
        _open[client] = 0;
        var ct = _stop.Token;
        try
        {
            var downstream = client.GetStream();
            switch (fault)
            {
                case Fault.Reset:
                    client.Client.LingerState = new LingerOption(true, 0);
                    return;
                case Fault.BlackHole:
                    var sink = new byte[4096];
                    while (await downstream.ReadAsync(sink, ct) > 0) { }
                    return;
                case Fault.Garbage:
                    // Whatever of the request arrived first is enough: the answer is garbage anyway.
                    _ = await downstream.ReadAsync(new byte[4096], ct);
                    await downstream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n\u0001\u0002garbage{{{\r\n\r\n"u8.ToArray(), ct);
                    client.Client.LingerState = new LingerOption(true, 0);
                    return;
            }
            using var server = new TcpClient();
            await server.ConnectAsync(_target.Host, _target.Port, ct);
            var upstream = server.GetStream();
            var up = downstream.CopyToAsync(upstream, ct);
            var down = fault switch
            {
                Fault.SlowDrip => DripAsync(upstream, downstream, ct),
                Fault.CutResponse => CutAsync(upstream, downstream, CutAfterBytes, ct),
                _ => upstream.CopyToAsync(downstream, ct),
            };
            await Task.WhenAny(up, down);
            if (fault == Fault.CutResponse)
            {
                client.Client.LingerState = new LingerOption(true, 0);
                server.Client.LingerState = new LingerOption(true, 0);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException) { }
        finally
        {
            _open.TryRemove(client, out _);
        }
    }

    private static async Task DripAsync(Stream from, Stream to, CancellationToken ct)
    {
        var one = new byte[1];
        while (await from.ReadAsync(one, ct) > 0)
        {
            await to.WriteAsync(one, ct);
            await Task.Delay(20, ct);
        }
    }

    private static async Task CutAsync(Stream from, Stream to, int limit, CancellationToken ct)
    {
        var buffer = new byte[1];
        for (var sent = 0; sent < limit && await from.ReadAsync(buffer, ct) > 0; sent++) await to.WriteAsync(buffer, ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
