using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Hosting;

/// <summary>What <c>bulwark serve</c> prints once it listens: where, what model, what is enabled, and on first start the admin key.</summary>
public static class StartupReport
{
    public static void Write(TextWriter output, ServeHost host, ServerSettings settings, IConfiguration configuration)
    {
        var url = host.Address.ToString().TrimEnd('/');
        var card = host.Backend.Model;
        var (server, admission, serve) = (settings.Server, settings.Admission, settings.Serve);
        output.WriteLine($"Bulwark is serving '{card.Id}' at {url}");
        output.WriteLine($"  model      {host.Model.Origin}");
        output.WriteLine($"             context {card.ContextLength} tokens, vocabulary {card.VocabularySize}");
        if (card.Notice is { } notice) output.WriteLine($"  NOTICE     {notice}");
        output.WriteLine($"  engine     KV cache {serve.KvCacheMemory}, up to {serve.MaxSequences} sequences and {serve.MaxBatchedTokens} tokens per step");
        output.WriteLine($"  admission  {admission.MaxConcurrentRequests} requests at once, {admission.MaxQueueLength} queued, {admission.MaxQueueWait.TotalSeconds:0} s longest wait");
        var redis = configuration["Bulwark:Quotas:Redis"];
        var postgres = configuration["Bulwark:Storage:Postgres"];
        output.WriteLine($"  security   API keys on every route but /health and /ready; quotas {(string.IsNullOrWhiteSpace(redis) ? "in memory" : "in Redis")}; " +
            $"keys and audit in {(string.IsNullOrWhiteSpace(postgres) ? "SQLite" : "PostgreSQL")}; secret redaction of output {(settings.RedactSecrets ? "on" : "off")}");
        output.WriteLine($"  metrics    {url}/metrics (Prometheus; an admin key or the metrics token)");
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
