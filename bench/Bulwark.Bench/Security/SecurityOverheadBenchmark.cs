using System.Diagnostics;
using Bulwark.Server;
using Bulwark.Server.Audit;
using Bulwark.Server.Hosting;
using Bulwark.Server.Quotas;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Bulwark.Bench.Security;

/// <summary>Latencies of one measured run, in microseconds.</summary>
internal sealed record OverheadResult(int Iterations, double OnP50, double OnP99, double OffP50, double OffP99, double OverheadP50, double OverheadP99, long Audited);

/// <summary>
/// The cost of the security front on a trivial request, in-process: the same 1-token request
/// through (a) authentication, the quota gate (admit + settle with the in-memory store) and the
/// audit record, and (b) the bare endpoint. Requests are built as Kestrel would hand them over
/// (an <see cref="HttpContext"/> with headers, address and body) and the two paths alternate
/// request by request, so both see the same machine state. The audit writer runs in the
/// background and writes to SQLite, as in a real server; the benchmark waits for it at the end
/// and reports how many records it wrote.
/// </summary>
internal static class SecurityOverheadBenchmark
{
    public static async Task<OverheadResult> RunAsync(string dataDir, int iterations, int warmup, CancellationToken ct)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLogging();
        builder.Services.AddBulwarkSecurity(new ConfigurationBuilder().Build(), DataDirectory.Resolve(dataDir).EnsureCreated());
        using var host = builder.Build();
        await host.StartAsync(ct);
        try
        {
            var services = host.Services;
            var issued = await services.GetRequiredService<KeyIssuer>().CreateAsync(AlternatingPairs.UnrefusedKey, "bench", ct);
            var secured = Pipeline(services, secured: true);
            var bare = Pipeline(services, secured: false);
            var authorization = "Bearer " + issued.Key;
            var (on, off) = await AlternatingPairs.MeasureAsync(
                () => InvokeAsync(secured, services, authorization), () => InvokeAsync(bare, services, authorization), warmup, iterations);
            var audit = services.GetRequiredService<AuditWriter>();
            await audit.FlushAsync(ct);
            var storage = services.GetRequiredService<Bulwark.Server.Storage.SecurityStorage>();
            var usage = await storage.Audit.UsageAsync(issued.Record.Id, DateTime.UtcNow.ToString("yyyy-MM-dd"), ct);

            Array.Sort(on);
            Array.Sort(off);
            double P(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
            return new OverheadResult(iterations, P(on, 0.5), P(on, 0.99), P(off, 0.5), P(off, 0.99),
                P(on, 0.5) - P(off, 0.5), P(on, 0.99) - P(off, 0.99), usage?.Requests ?? 0);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    private static RequestDelegate Pipeline(IServiceProvider services, bool secured)
    {
        var app = new ApplicationBuilder(services);
        if (secured)
        {
            // The stages a real server runs around the identity stage: the audit record and the list of active requests.
            app.UseBulwarkAudit();
            app.UseBulwarkSecurity();
        }
        var gate = services.GetRequiredService<QuotaGate>();
        app.Run(async context =>
        {
            if (secured)
            {
                await using var lease = await gate.AdmitRequestAsync(context, context.GetCaller()!);
                await lease.ReserveTokensAsync(2);
                var usage = context.GetRequestUsage();
                (usage.Model, usage.PromptTokens, usage.CompletionTokens) = ("bench-model", 1, 1);
                await lease.SettleAsync(2);
            }
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(Body);
        });
        return app.Build();
    }

    private static readonly byte[] Body = """{"id":"cmpl-bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"x"}}]}"""u8.ToArray();

    private static async Task<double> InvokeAsync(RequestDelegate pipeline, IServiceProvider services, string authorization)
    {
        var context = new DefaultHttpContext { RequestServices = services };
        context.Request.Method = "POST";
        context.Request.Path = "/v1/chat/completions";
        context.Request.Headers.Authorization = authorization;
        context.Request.ContentType = "application/json";
        context.Connection.RemoteIpAddress = System.Net.IPAddress.Loopback;
        context.Response.Body = Stream.Null;
        var started = Stopwatch.GetTimestamp();
        await pipeline(context);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
        if (context.Response.StatusCode != 200)
            throw new InvalidOperationException($"benchmark request answered {context.Response.StatusCode}; expected 200");
        return elapsed;
    }
}
