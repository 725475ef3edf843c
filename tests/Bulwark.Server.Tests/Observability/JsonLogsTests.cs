using System.Text.Json;
using Bulwark.Bench.Http;
using Bulwark.Server.Hosting;
using Microsoft.Extensions.Logging;
using Bulwark.Server.Tests.Cli;
using Bulwark.Server.Tests.Security;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Observability;

/// <summary><c>bulwark serve --log-format json</c> as an operator runs it: JSON lines on the console, each request's lines carrying its trace id.</summary>
public sealed class JsonLogsTests
{
    [Fact]
    public async Task ServeWithJsonLogsWritesParseableLinesCarryingTheRequestsTraceId()
    {
        var environment = new Dictionary<string, string>
        {
            // ASP.NET Core's per-request lines (off by default) give a request's log lines to look at.
            ["Logging__LogLevel__Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information",
        };
        await using var serve = await ServeProcess.StartAsync(BuiltCli.Path, environment, Fixtures.NewTempDirectory("json-logs"), "--log-format", "json", "--kv-cache-memory", "16MiB");
        var traceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        using var client = serve.Client();
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/models");
        request.Headers.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()[..8])}-01");
        Assert.Equal(401, (int)(await client.SendAsync(request)).StatusCode);

        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), () => Task.FromResult(serve.Output.Contains(traceId))),
            "no log line carried the request's trace id:\n" + serve.Output);
        var lines = serve.Output.Split('\n').Where(l => l.StartsWith('{')).ToList();
        Assert.NotEmpty(lines);
        var parsed = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(parsed, p => Assert.True(p.TryGetProperty("Category", out _) && p.TryGetProperty("LogLevel", out _) && p.TryGetProperty("Timestamp", out _), p.GetRawText()));
        var traced = parsed.Where(p => p.GetRawText().Contains(traceId)).ToList();
        Assert.NotEmpty(traced);
        Assert.All(traced, p => Assert.Contains(p.GetProperty("Scopes").EnumerateArray(),
            s => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("TraceId", out var id) && id.GetString() == traceId && s.TryGetProperty("SpanId", out _)));
    }

    [Fact]
    public void ScopesTheFactoryKeepsReachAProviderRedactedWithTheirTraceIds()
    {
        var inner = new ScopeRecorder();
        using var factory = LoggerFactory.Create(logging =>
        {
            logging.AddProvider(inner);
            logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
            logging.AddBulwarkRedaction();
        });
        var logger = factory.CreateLogger("test");
        using var activity = new System.Diagnostics.Activity("request").SetIdFormat(System.Diagnostics.ActivityIdFormat.W3C).Start();
        using (logger.BeginScope(new Dictionary<string, object?> { ["Header"] = "Bearer bwk_abcdefghijkl_secretsecretsecret" }))
            logger.LogWarning("hello");

        var scopes = string.Join(" | ", inner.Scopes.Select(s => s is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(",", pairs.Select(p => $"{p.Key}={p.Value}")) : s?.ToString()));
        Assert.Contains("TraceId=" + activity.TraceId.ToHexString(), scopes);
        Assert.Contains("Bearer ***", scopes);
        Assert.DoesNotContain("secretsecret", scopes);
    }

    /// <summary>A provider that takes the factory's scopes, as the console's does, and records those of each line.</summary>
    private sealed class ScopeRecorder : ILoggerProvider, ISupportExternalScope
    {
        private IExternalScopeProvider? _scopes;
        public List<object?> Scopes { get; } = [];

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose() { }

        private sealed class Logger(ScopeRecorder owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner._scopes?.ForEachScope((scope, list) => list.Add(scope), owner.Scopes);
        }
    }
}
