using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Redaction;

/// <summary>
/// Wraps a logger provider so every message, every structured value and every exception text passes
/// through <see cref="SecretRedactor"/> before the inner provider sees it: a key pasted into any
/// field (a model name, a header echoed in an error) cannot reach a log sink. A provider that takes its
/// scopes from the logger factory (the console's: ASP.NET Core's request scope, the trace and span ids
/// of <c>ActivityTrackingOptions</c>) gets them through a scope provider that redacts them the same way.
/// </summary>
public sealed class RedactingLoggerProvider(ILoggerProvider inner) : ILoggerProvider, ISupportExternalScope
{
    public ILogger CreateLogger(string categoryName) => new RedactingLogger(inner.CreateLogger(categoryName));

    public void SetScopeProvider(IExternalScopeProvider scopeProvider)
    {
        if (inner is ISupportExternalScope scoped) scoped.SetScopeProvider(new RedactingScopes(scopeProvider));
    }

    /// <summary>The factory's scopes, each passed to the inner provider redacted.</summary>
    private sealed class RedactingScopes(IExternalScopeProvider scopes) : IExternalScopeProvider
    {
        public void ForEachScope<TState>(Action<object?, TState> callback, TState state) =>
            scopes.ForEachScope(static (scope, s) => s.Callback(scope switch
            {
                IEnumerable<KeyValuePair<string, object?>> pairs => new RedactedState(RedactingLogger.Values(pairs), SecretRedactor.Redact(scope.ToString() ?? ""), format: false),
                null => null,
                _ => SecretRedactor.Redact(scope.ToString() ?? ""),
            }, s.State), (Callback: callback, State: state));

        public IDisposable Push(object? state) => scopes.Push(state);
    }

    public void Dispose() => inner.Dispose();

    private sealed class RedactingLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(new RedactedState(Values(state), Text(state)));

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!inner.IsEnabled(logLevel)) return;
            var message = SecretRedactor.Redact(formatter(state, exception));
            var redacted = new RedactedState(Values(state), message);
            inner.Log(logLevel, eventId, redacted, Redact(exception), static (s, _) => s.Message);
        }

        private static string Text<TState>(TState state) => SecretRedactor.Redact(state?.ToString() ?? "");

        internal static List<KeyValuePair<string, object?>> Values<TState>(TState state)
        {
            var values = new List<KeyValuePair<string, object?>>();
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
                foreach (var (key, value) in pairs)
                    values.Add(new(key, value is null or ValueType ? value : SecretRedactor.Redact(value.ToString() ?? "")));
            return values;
        }

        private static Exception? Redact(Exception? exception)
        {
            if (exception is null) return null;
            var text = exception.ToString();
            var clean = SecretRedactor.Redact(text);
            return ReferenceEquals(text, clean) || text == clean ? exception : new RedactedException(exception.GetType().FullName!, clean);
        }
    }

    /// <summary>Structured state with redacted values; its text is the redacted message.</summary>
    /// <param name="format">Whether a missing <c>{OriginalFormat}</c> entry is added (for a log message; a scope has none).</param>
    private sealed class RedactedState(List<KeyValuePair<string, object?>> values, string message, bool format = true) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public string Message { get; } = message;
        public KeyValuePair<string, object?> this[int index] => index == values.Count ? new("{OriginalFormat}", Message) : values[index];
        public int Count => values.Count + (!format || values.Exists(v => v.Key == "{OriginalFormat}") ? 0 : 1);
        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
        {
            for (var i = 0; i < Count; i++) yield return this[i];
        }
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
        public override string ToString() => Message;
    }
}

/// <summary>Stands in for an exception whose text held a secret; carries the redacted text only.</summary>
public sealed class RedactedException(string originalType, string redactedText) : Exception($"{originalType} (redacted)")
{
    public override string ToString() => redactedText;
    public override string? StackTrace => null;
}
