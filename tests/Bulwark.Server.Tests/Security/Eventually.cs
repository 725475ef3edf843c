namespace Bulwark.Server.Tests.Security;

/// <summary>Polls a condition that another replica or process makes true, up to a deadline.</summary>
internal static class Eventually
{
    /// <summary>True as soon as <paramref name="condition"/> holds; false if it still fails at the deadline.</summary>
    public static async Task<bool> WithinAsync(TimeSpan limit, Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            if (await condition()) return true;
            if (DateTime.UtcNow >= deadline) return false;
            await Task.Delay(20);
        }
    }
}
