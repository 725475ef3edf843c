using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text.Json;
using Bulwark.Server.Audit;
using Bulwark.Server.Admin;
using Bulwark.Server.Hosting;
using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.Security;

/// <summary>
/// A real Kestrel on 127.0.0.1 with the security front and trivial endpoints standing in for the
/// API routes (the server branch owns the real ones). Stand-ins: POST /v1/chat/completions takes
/// {"model","prompt_tokens","max_tokens","completion_tokens"} and goes through the model ACL and the
/// quota gate like the real route will; GET /v1/models; GET /v1/wait (held until cancelled);
/// GET /metrics; /health and /ready; the admin group.
/// </summary>
internal sealed class SecuredApp : IAsyncDisposable
{
    private SecuredApp(WebApplication app, Uri address, LogCapture logs)
    {
        App = app;
        Address = address;
        Logs = logs;
    }

    public WebApplication App { get; }
    public Uri Address { get; }
    public LogCapture Logs { get; }
    public IServiceProvider Services => App.Services;

    /// <param name="clock">The server's clock (keys' expiry and grace, the in-memory quota store); the system clock when null.</param>
    public static async Task<SecuredApp> StartAsync(string dataDir, IDictionary<string, string?>? settings = null, LogCapture? logs = null, TimeProvider? clock = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(settings ?? new Dictionary<string, string?>());
        logs ??= new LogCapture();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddProvider(logs);
        builder.Logging.AddBulwarkRedaction();
        if (clock is not null) builder.Services.AddSingleton(clock);
        builder.Services.AddBulwarkSecurity(builder.Configuration, DataDirectory.Resolve(dataDir).EnsureCreated());

        var app = builder.Build();
        app.UseBulwarkAudit();
        app.UseBulwarkSecurity();
        MapStandIns(app);
        app.MapBulwarkAdmin();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new SecuredApp(app, new Uri(address), logs);
    }

    private static void MapStandIns(WebApplication app)
    {
        app.MapGet("/health", () => "ok");
        app.MapGet("/ready", () => "ready");
        app.MapGet("/metrics", () => "bulwark_requests_total 1\n").WithMetadata(new RequireScopeAttribute(Scopes.Metrics));
        app.MapGet("/v1/models", () => Results.Json(new { @object = "list", data = new[] { new { id = "m1", @object = "model", created = 0, owned_by = "bulwark" } } }));
        app.MapGet("/v1/wait", async (HttpContext context) =>
        {
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
            return Results.Ok();
        });
        app.MapPost("/v1/chat/completions", async (HttpContext context, QuotaGate gate, ILogger<SecuredApp> log) =>
        {
            var caller = context.GetCaller()!;
            using var body = await JsonDocument.ParseAsync(context.Request.Body);
            var root = body.RootElement;
            var model = root.GetProperty("model").GetString()!;
            var usage = context.GetRequestUsage();
            usage.Model = model;
            // A model field is user input: logging it must not leak a key pasted into it.
            log.LogInformation("chat request for model {Model}", model);
            if (!caller.CanUseModel(model))
            {
                await ErrorResponse.WriteAsync(context, new ApiException(403, $"model '{model}' is not allowed for this key", "permission_error", null, "model_not_allowed"));
                return Results.Empty;
            }
            // Like the real API, an unknown model is refused with its name quoted, through the product's error writer.
            if (model is not ("m1" or "m2" or "m3"))
            {
                await ErrorResponse.WriteAsync(context, new ApiException(404, $"The model '{model}' does not exist.", "invalid_request_error", null, "model_not_found"));
                return Results.Empty;
            }
            var prompt = root.TryGetProperty("prompt_tokens", out var p) ? p.GetInt64() : 1;
            var max = root.TryGetProperty("max_tokens", out var m) ? m.GetInt64() : 1;
            var actual = root.TryGetProperty("completion_tokens", out var c) ? c.GetInt64() : max;
            QuotaLease lease;
            try
            {
                lease = await gate.AdmitRequestAsync(context, caller);
                await lease.ReserveTokensAsync(prompt + max);
            }
            catch (ApiException e)
            {
                await ErrorResponse.WriteAsync(context, e);
                return Results.Empty;
            }
            await using var _ = lease;
            usage.PromptTokens = prompt;
            usage.CompletionTokens = actual;
            usage.Content = "prompt text of " + caller.Tenant;
            await lease.SettleAsync(prompt + actual);
            return Results.Json(new { id = "chatcmpl-1", @object = "chat.completion", model });
        });
    }

    public HttpClient Client(string? key = null)
    {
        var client = new HttpClient { BaseAddress = Address };
        if (key is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public T Get<T>() where T : notnull => App.Services.GetRequiredService<T>();

    public async Task<IssuedKey> CreateKeyAsync(KeySpec spec) => await Get<KeyIssuer>().CreateAsync(spec, "test");

    public static StringContent Chat(string model, long promptTokens = 1, long maxTokens = 1, long? completionTokens = null) =>
        new(JsonSerializer.Serialize(new { model, prompt_tokens = promptTokens, max_tokens = maxTokens, completion_tokens = completionTokens ?? maxTokens }),
            System.Text.Encoding.UTF8, "application/json");

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }

    public static string NewDataDir(string name = "app") => Fixtures.NewTempDirectory(name);
}

/// <summary>Collects every formatted log line (after redaction) so tests can scan them.</summary>
internal sealed class LogCapture : ILoggerProvider
{
    public ConcurrentQueue<string> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose() { }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(";", pairs.Select(p => $"{p.Key}={p.Value}")) : "";
            owner.Lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)} [{values}] {exception}");
        }
    }
}
