using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>Clients that hold a connection without sending a request are cut off by Kestrel's limits.</summary>
public sealed class SlowClientTests
{
    private static Task<RunningServer> Start() => RunningServer.StartAsync(new ScriptedBackend(), new()
    {
        ["Bulwark:Server:RequestHeadersTimeout"] = "00:00:01",
        ["Bulwark:Server:MinRequestBodyBytesPerSecond"] = "1000",
        ["Bulwark:Server:MinRequestBodyGracePeriod"] = "00:00:02",
    });

    /// <summary>Reads until the server closes the connection; returns what it said (possibly nothing) and how long that took.</summary>
    private static async Task<(string Answer, TimeSpan After)> UntilClosed(NetworkStream stream, Stopwatch clock, Func<Task>? trickle = null)
    {
        var received = new StringBuilder();
        var buffer = new byte[4096];
        using var giveUp = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var reading = Task.Run(async () =>
        {
            try
            {
                int n;
                while ((n = await stream.ReadAsync(buffer, giveUp.Token)) > 0) received.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }
            catch (IOException)
            {
                // A reset is a close too.
            }
        });
        if (trickle is not null)
        {
            try
            {
                while (!reading.IsCompleted && !giveUp.IsCancellationRequested) await trickle();
            }
            catch (IOException)
            {
                // The server closed while we were still writing.
            }
        }
        await reading;
        Assert.False(giveUp.IsCancellationRequested, "the server never closed the connection");
        return (received.ToString(), clock.Elapsed);
    }

    [Fact]
    public async Task AClientThatNeverFinishesItsHeadersIsCutOff()
    {
        await using var server = await Start();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Address.Host, server.Address.Port);
        var stream = tcp.GetStream();
        var clock = Stopwatch.StartNew();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"));

        var (answer, after) = await UntilClosed(stream, clock);

        Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), answer);
        Assert.InRange(after, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task ABodyTrickledBelowTheMinimumRateIsCutOff()
    {
        await using var server = await Start();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Address.Host, server.Address.Port);
        var stream = tcp.GetStream();
        var clock = Stopwatch.StartNew();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            $"Authorization: Bearer {server.ApiKey}\r\nContent-Length: 100000\r\n\r\n{{"));

        // One byte every 200 ms is 5 bytes/s, far below the 1000 bytes/s the server demands after 2 s of grace.
        var (answer, after) = await UntilClosed(stream, clock, async () =>
        {
            await stream.WriteAsync(" "u8.ToArray());
            await Task.Delay(200);
        });

        Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), answer);
        Assert.InRange(after, TimeSpan.FromSeconds(1.9), TimeSpan.FromSeconds(25));
    }

    [Theory]
    [InlineData("00:00:01", false)]      // Kestrel refuses one second or less: caught at validation, not at start-up
    [InlineData("00:00:01.5000", true)]
    [InlineData("00:05:00", true)]
    [InlineData("00:05:00.0010", false)]
    public void TheBodyRateGracePeriodIsValidatedAsKestrelWillUseIt(string grace, bool valid)
    {
        var options = new Bulwark.Server.Hosting.ServerOptions { MinRequestBodyGracePeriod = TimeSpan.Parse(grace, System.Globalization.CultureInfo.InvariantCulture) };
        Assert.Equal(valid, !options.Validate().Any());
    }
}
