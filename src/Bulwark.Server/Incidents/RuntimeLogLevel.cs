using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Bulwark.Server.Incidents;

/// <summary>
/// A log level an operator sets at run time (admin API or CLI, spread to every replica through the
/// incident log). While set it overrides every configured level; <c>null</c> returns to the
/// configuration. Works by re-posting <see cref="LoggerFilterOptions"/>, which the logger factory
/// watches, so existing loggers pick it up without a restart.
/// </summary>
public sealed class RuntimeLogLevel : IPostConfigureOptions<LoggerFilterOptions>, IOptionsChangeTokenSource<LoggerFilterOptions>
{
    private CancellationTokenSource _change = new();
    private readonly Lock _gate = new();

    public LogLevel? Override { get; private set; }

    public string? Name => Options.DefaultName;

    public void Set(LogLevel? level)
    {
        CancellationTokenSource previous;
        lock (_gate)
        {
            if (Override == level) return;
            Override = level;
            previous = _change;
            _change = new CancellationTokenSource();
        }
        previous.Cancel();
        previous.Dispose();
    }

    public IChangeToken GetChangeToken()
    {
        lock (_gate) return new CancellationChangeToken(_change.Token);
    }

    public void PostConfigure(string? name, LoggerFilterOptions options)
    {
        if (Override is not { } level) return;
        options.MinLevel = level;
        options.Rules.Clear();
    }

    /// <summary>Parses "Debug", "information", ... or "default" (back to configuration).</summary>
    public static bool TryParse(string text, out LogLevel? level)
    {
        level = null;
        if (text.Equals("default", StringComparison.OrdinalIgnoreCase)) return true;
        if (Enum.TryParse<LogLevel>(text, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed) && !int.TryParse(text, out _))
        {
            level = parsed;
            return true;
        }
        return false;
    }
}
