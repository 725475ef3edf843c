using Bulwark.Server.Observability;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Hosting;

/// <summary>What <c>bulwark serve</c> prints once it listens: where, what model, what is enabled, and on first start the admin key.</summary>
public static class StartupReport
{
    public static void Write(TextWriter output, ServeHost host, ServerSettings settings, IConfiguration configuration)
    {
        var url = host.Address.ToString().TrimEnd('/');
        var (server, admission, serve) = (settings.Server, settings.Admission, settings.Serve);
        var served = host.Models.List();
        output.WriteLine(served.Count > 0 ? $"Bulwark is serving '{served[0].Id}' at {url}" : $"Bulwark is serving no model yet at {url}");
        if (host.Backend is { Model: var card } && host.Model is { } source)
        {
            output.WriteLine($"  model      {source.Origin}");
            output.WriteLine($"             context {card.ContextLength} tokens, vocabulary {card.VocabularySize}");
            if (card.Notice is { } notice) output.WriteLine($"  NOTICE     {notice}");
            output.WriteLine($"  engine     KV cache {serve.KvCacheMemory}, up to {serve.MaxSequences} sequences and {serve.MaxBatchedTokens} tokens per step");
        }
        foreach (var pool in host.Upstreams?.Pools ?? [])
        {
            var healthy = pool.Endpoints.Count(e => e.Healthy);
            var models = pool.ServedModels;
            output.WriteLine($"  upstream   pool {pool.Name}: {healthy} of {pool.Endpoints.Count} endpoint(s) up ({string.Join(", ", pool.Endpoints.Select(e => e.Name))}); " +
                (models.Count == 0 ? "no model listed yet (models are added as the health checks find them)" : "models " + string.Join(", ", models)));
        }
        output.WriteLine($"  admission  {admission.MaxConcurrentRequests} requests at once, {admission.MaxQueueLength} queued, {admission.MaxQueueWait.TotalSeconds:0} s longest wait");
        var redis = configuration["Bulwark:Quotas:Redis"];
        var postgres = configuration["Bulwark:Storage:Postgres"];
        output.WriteLine($"  security   API keys on every route but /health and /ready; quotas {(string.IsNullOrWhiteSpace(redis) ? "in memory" : "in Redis")}; " +
            $"keys and audit in {(string.IsNullOrWhiteSpace(postgres) ? "SQLite" : "PostgreSQL")}; secret redaction of output {(settings.RedactSecrets ? "on" : "off")}");
        var tls = configuration["Bulwark:Tls:CertificatePath"];
        output.WriteLine(string.IsNullOrWhiteSpace(tls)
            ? "  tls        off (plain HTTP; configure Bulwark:Tls, see docs/security.md, before leaving loopback)"
            : $"  tls        on{(string.IsNullOrWhiteSpace(configuration["Bulwark:Tls:ClientCaPath"]) ? "" : ", client certificates checked against the configured CA")}");
        output.WriteLine($"  metrics    {url}/metrics (Prometheus; an admin key or the metrics token)");
        output.WriteLine(settings.Console.ServedWhen(server.IsLoopbackOnly)
            ? $"  console    {url}/console (sign in with an admin key; docs/console.md)"
            : settings.Console.Enabled
                ? "  console    off: listening beyond loopback; Bulwark:Console:AllowRemote=true serves it (configure TLS first)"
                : "  console    off (Bulwark:Console:Enabled=false)");
        output.WriteLine($"  memory     {GcMode.Describe()} (DOTNET_gcServer, DOTNET_gcConcurrent, DOTNET_GCConserveMemory override; docs/reliability.md)");
        var memory = settings.Memory;
        output.WriteLine($"             {NativeHeap.Applied ?? "malloc arenas: glibc's default"}; " +
            (memory.Gen2WhenGrownByBytes > 0 ? $"a full GC when the heap grew by {memory.Gen2WhenGrownBy} since the last (checked every {memory.Gen2CheckInterval.TotalSeconds:0} s)" : "no server-requested GC (Gen2WhenGrownBy 0)"));
        output.WriteLine($"  data       {settings.Data.Root}");
        output.WriteLine(server.IsLoopbackOnly
            ? "  network    loopback only; to accept other machines use --host 0.0.0.0 (put TLS in front or configure Kestrel certificates)"
            : $"  network    listening on {server.Host}: reachable from other machines");
        if (host.InitialAdminKey is { } admin)
        {
            output.WriteLine();
            output.WriteLine("First start: an admin key was created. It is shown only this once; keep it somewhere safe:");
            output.WriteLine();
            output.WriteLine("  " + admin.Key);
            output.WriteLine();
            output.WriteLine("Admin keys manage the server (/admin, /metrics) and cannot call the API. Create an API key with it:");
            output.WriteLine($"  curl -s {url}/admin/keys -H \"Authorization: Bearer $ADMIN_KEY\" -H 'Content-Type: application/json' -d '{{\"name\":\"my-app\"}}'");
            output.WriteLine($"or: bulwark keys create --name my-app --data-dir {settings.Data.Root}");
        }
        output.WriteLine();
        output.WriteLine("Press Ctrl+C to stop (requests in flight get " + $"{server.DrainTimeout.TotalSeconds:0} s to finish).");
    }
}
