namespace Bulwark.Bench.Http;

/// <summary>
/// What one request costs the whole process, in CPU time and in bytes allocated on the managed heap,
/// for each of two ways of sending it: the median over <c>blocks</c> alternating blocks (A, B, B, A, …)
/// of process CPU seconds (every thread: client, servers, background writers) and allocated bytes
/// divided by the requests of the block. Unlike wall time, CPU time hardly moves with the machine's
/// load: a request waiting for a core costs no CPU.
/// </summary>
internal readonly record struct RequestCost(double CpuMicroseconds, double AllocatedBytes);

internal static class CostPerRequest
{
    /// <returns>The median cost per request of <paramref name="first"/> and of <paramref name="second"/> (and the costs of every block, first then second).</returns>
    public static async Task<(RequestCost First, RequestCost Second)> MeasureAsync(Func<Task<double>> first, Func<Task<double>> second, int blocks, int perBlock)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(perBlock, 1);
        var a = new List<RequestCost>(blocks);
        var b = new List<RequestCost>(blocks);
        for (var i = 0; i < blocks; i++)
        {
            // A B, then B A: neither always follows the other's garbage.
            var order = i % 2 == 0 ? new[] { (first, a), (second, b) } : [(second, b), (first, a)];
            foreach (var (send, costs) in order) costs.Add(await BlockAsync(send, perBlock));
        }
        return (Median(a), Median(b));
    }

    private static async Task<RequestCost> BlockAsync(Func<Task<double>> send, int requests)
    {
        var cpu = Environment.CpuUsage.TotalTime;
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < requests; i++) await send();
        var cpuUs = (Environment.CpuUsage.TotalTime - cpu).TotalMicroseconds / requests;
        var bytes = (double)(GC.GetTotalAllocatedBytes(precise: true) - allocated) / requests;
        return new RequestCost(cpuUs, bytes);
    }

    /// <summary>Each quantity's own median (the middle of the sorted values; the mean of the two middle ones for an even count).</summary>
    internal static RequestCost Median(IReadOnlyList<RequestCost> costs) =>
        new(Median(costs.Select(c => c.CpuMicroseconds)), Median(costs.Select(c => c.AllocatedBytes)));

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
