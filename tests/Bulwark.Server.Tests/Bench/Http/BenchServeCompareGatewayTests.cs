using System.Text.Json;
using Bulwark.Bench.Http;
using Bulwark.Bench.Security;

namespace Bulwark.Server.Tests.Bench.Http;

/// <summary>
/// <c>bench/run serve --compare-gateway</c>: the shape of what it prints (latency, CPU and allocation
/// per request, the gateway's own time from the diagnostic events) and the arithmetic behind it.
/// Timing goals live in the benchmark run itself, never here.
/// </summary>
public class BenchServeCompareGatewayTests
{
    [Fact]
    public async Task ATinyRunReportsLatencyCostAndTheGatewaysOwnTimeAsJson()
    {
        var result = await BenchHarness.RunAsync("serve", "--compare-gateway", "--instant-engine", "--requests", "8", "--warmup", "2", "--json");
        Assert.True(result.ExitCode == 0, result.Error);
        using var json = JsonDocument.Parse(result.Output);
        var root = json.RootElement;
        Assert.Equal(8, root.GetProperty("requests").GetInt32());
        Assert.Equal(2, root.GetProperty("warmup").GetInt32());
        // A fixed warm-up was asked for: no waiting for the JIT.
        Assert.Equal(JsonValueKind.Null, root.GetProperty("warmup_jit_quiet").ValueKind);
        Assert.Equal(root.GetProperty("through_p50_us").GetDouble() - root.GetProperty("direct_p50_us").GetDouble(), root.GetProperty("added_p50_us").GetDouble(), 6);
        Assert.Equal(6, root.GetProperty("cost_blocks").GetInt32());
        Assert.Equal(2, root.GetProperty("cost_block_requests").GetInt32());
        foreach (var side in new[] { "through", "direct" })
        {
            Assert.True(root.GetProperty($"{side}_cpu_us").GetDouble() > 0, side);
            Assert.True(root.GetProperty($"{side}_allocated_bytes").GetDouble() > 0, side);
        }
        Assert.Equal(root.GetProperty("through_cpu_us").GetDouble() - root.GetProperty("direct_cpu_us").GetDouble(), root.GetProperty("added_cpu_us").GetDouble(), 6);
        var segments = root.GetProperty("segments");
        Assert.Equal(2, segments.GetProperty("requests").GetInt32());
        foreach (var name in new[] { "gateway_in_us", "upstream_hop_us", "upstream_server_us", "gateway_out_us" })
            Assert.True(segments.GetProperty(name).GetDouble() > 0, name);
        // No order is asserted between the upstream's Kestrel time and the hop: Kestrel ends a request after its
        // response went out, so the gateway's HttpClient can have the answer first.
    }

    [Fact]
    public async Task TheTableNamesEachPart()
    {
        var result = await BenchHarness.RunAsync("serve", "--compare-gateway", "--instant-engine", "--requests", "4", "--warmup", "0");
        Assert.True(result.ExitCode == 0, result.Error);
        string[] parts =
        [
            "4 requests each (after 0 warm-up), max_tokens 1", "added by the gateway: p50 ", "median of 6 alternating blocks of 1",
            "µs CPU", " B allocated", "gateway's own time (in + out)", "inside the upstream's Kestrel",
        ];
        foreach (var part in parts) Assert.Contains(part, result.Output);
    }

    [Fact]
    public async Task AnAutomaticWarmUpRunsAtLeastItsMinimumAndStopsAtItsLimit()
    {
        var calls = 0;
        Task<double> Count() { Interlocked.Increment(ref calls); return Task.FromResult(1.0); }

        // Quiet can never be reached before the limit: it stops there and says so.
        var (pairs, quiet) = await AlternatingPairs.WarmUntilJitQuietAsync(Count, Count, minimum: 3, quietPairs: int.MaxValue, TimeSpan.Zero, TimeSpan.FromMilliseconds(50));
        Assert.False(quiet);
        Assert.True(pairs >= 3, $"{pairs} pairs");
        Assert.Equal(2 * pairs, calls);

        // Nothing left to compile in a loop this small: it goes quiet, after at least the minimum.
        calls = 0;
        (pairs, quiet) = await AlternatingPairs.WarmUntilJitQuietAsync(Count, Count, minimum: 20, quietPairs: 10, TimeSpan.Zero, TimeSpan.FromMinutes(1));
        Assert.True(quiet);
        Assert.True(pairs >= 20, $"{pairs} pairs");
        Assert.Equal(2 * pairs, calls);

        // Quiet takes time as well as pairs: a loop this fast runs for the quiet time at least.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        (_, quiet) = await AlternatingPairs.WarmUntilJitQuietAsync(Count, Count, minimum: 0, quietPairs: 1, TimeSpan.FromMilliseconds(300), TimeSpan.FromMinutes(1));
        Assert.True(quiet);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(300), $"{clock.Elapsed}");
    }

    [Fact]
    public void TheCostIsEachQuantitysOwnMedian()
    {
        Assert.Equal(new RequestCost(2, 30), CostPerRequest.Median([new(1, 30), new(3, 10), new(2, 50)]));
        Assert.Equal(new RequestCost(2.5, 25), CostPerRequest.Median([new(1, 10), new(2, 20), new(3, 30), new(4, 40)]));
    }

    [Fact]
    public async Task TheCostPhaseAlternatesBlocksAndDividesByTheBlock()
    {
        var order = new List<char>();
        Task<double> A() { order.Add('a'); return Task.FromResult(0.0); }
        Task<double> B() { order.Add('b'); return Task.FromResult(0.0); }
        var (a, b) = await CostPerRequest.MeasureAsync(A, B, blocks: 3, perBlock: 2);
        Assert.Equal("aabbbbaaaabb", new string([.. order]));
        Assert.True(a.CpuMicroseconds >= 0 && b.CpuMicroseconds >= 0);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => CostPerRequest.MeasureAsync(A, B, blocks: 0, perBlock: 1));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => CostPerRequest.MeasureAsync(A, B, blocks: 1, perBlock: 0));
    }
}
