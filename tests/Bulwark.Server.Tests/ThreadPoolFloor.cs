using System.Runtime.CompilerServices;

namespace Bulwark.Server.Tests;

/// <summary>
/// One test process hosts many servers at once (two replicas per test, each with its Redis and
/// PostgreSQL clients) beside CPU-bound tests, on a 2-core CI machine. With the runtime's default
/// floor of one worker thread per core, a burst that briefly occupies every worker leaves Redis
/// replies queued behind it until the pool grows, and StackExchange.Redis times a command out after
/// 5 s (a fresh-clone run saw `RedisTimeoutException ... WORKER: (Busy=10, Min=2), QueuedItems=38`
/// in a replica burst test). A higher floor lets the pool add threads at once instead.
/// </summary>
internal static class ThreadPoolFloor
{
    public const int MinWorkers = 32;

    [ModuleInitializer]
    internal static void Raise()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, MinWorkers), Math.Max(io, MinWorkers));
    }
}
