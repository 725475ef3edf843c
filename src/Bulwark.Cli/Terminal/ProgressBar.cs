using System.Diagnostics;

namespace Bulwark.Cli.Terminal;

/// <summary>
/// A one-line progress bar on standard error (so standard output stays clean for --json),
/// redrawn at most ten times a second; silent when standard error is not a terminal, except for
/// the final line. Counts bytes (shown in MiB) unless a <c>unit</c> is given, e.g. "requests"; then
/// the line also says how long the rest should take at the rate so far.
/// </summary>
internal sealed class ProgressBar(string label, long total, string? unit = null) : IProgress<long>
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly bool _interactive = !Console.IsErrorRedirected;
    private long _lastDrawMs = -1000;
    private long _done;

    public void Report(long value)
    {
        _done = value;
        var now = _clock.ElapsedMilliseconds;
        if (!_interactive || now - _lastDrawMs < 100) return;
        _lastDrawMs = now;
        Console.Error.Write("\r" + Line());
    }

    /// <summary>Draws the final state and ends the line.</summary>
    public void Finish()
    {
        _done = Math.Max(_done, total);
        Console.Error.WriteLine((_interactive ? "\r" : "") + Line());
    }

    private string Line()
    {
        const int width = 30;
        var fraction = total > 0 ? Math.Clamp((double)_done / total, 0, 1) : 1;
        var filled = (int)(fraction * width);
        var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
        if (unit is not null)
            return string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{label} [{new string('#', filled)}{new string('.', width - filled)}] {fraction * 100,5:0.0}% {_done}/{total} {unit} {_done / seconds,7:0.0} {unit}/s{Eta(_done, total, seconds)}");
        var rate = _done / seconds / (1 << 20);
        return $"{label} [{new string('#', filled)}{new string('.', width - filled)}] {fraction * 100,5:0.0}% {Mib(_done)}/{Mib(total)} MiB {rate,7:0.0} MiB/s";
    }

    /// <summary>" ETA 1m05s" from the average rate so far; empty before the first item and after the last.</summary>
    internal static string Eta(long done, long total, double seconds)
    {
        if (done <= 0 || done >= total) return "";
        var left = TimeSpan.FromSeconds(Math.Min(seconds / done * (total - done), 360_000));
        return left.TotalHours >= 1 ? $" ETA {(int)left.TotalHours}h{left.Minutes:00}m" : $" ETA {left.Minutes}m{left.Seconds:00}s";
    }

    private static string Mib(long bytes) => (bytes / (double)(1 << 20)).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
}
