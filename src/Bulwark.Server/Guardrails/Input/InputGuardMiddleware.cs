using System.Text.Json.Nodes;
using System.Text.Json;
using Bulwark.Server.Api;
using Bulwark.Server.Audit;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// Stage 5 of the spine, the input guard, for the generation routes (<c>/v1/chat/completions</c>,
/// <c>/v1/completions</c>, <c>/generate</c>, <c>/generate_stream</c>). It reads the JSON body,
/// sanitizes every text field a model will see (message contents, prompts, TGI inputs) and
/// rewrites the body when that changed anything, then scans the text the client controls as
/// data — user and tool messages, prompts, inputs; system messages are the application's own
/// instructions and are sanitized but not scanned. The verdict is counted in metrics, kept on the
/// request (<see cref="InjectionVerdict"/> feature, for the audit record: rule ids and score,
/// never text) and, under the block policy, a blocked request is refused with 400
/// <c>prompt_injection</c>. A body that is not JSON is left for the endpoint to refuse.
/// </summary>
public sealed class InputGuardMiddleware
{
    private static readonly JsonDocumentOptions ParseOptions = new() { MaxDepth = 32 };
    private readonly RequestDelegate _next;
    private readonly InputGuardOptions _options;
    private readonly InputSanitizer _sanitizer;
    private readonly InjectionScanner _scanner;
    private readonly GuardMetrics _metrics;

    public InputGuardMiddleware(RequestDelegate next, IConfiguration configuration, ServerMetrics metrics)
    {
        _next = next;
        _options = InputGuardOptions.Read(configuration);
        _sanitizer = new InputSanitizer(_options.MaxSpaceRun, _options.MaxNewlineRun);
        _scanner = InjectionScanner.Default;
        _metrics = new GuardMetrics(metrics.Meter);
    }

    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (!HttpMethods.IsPost(request.Method) || !IsGenerationRoute(request.Path)) { await _next(context); return; }
        var caller = context.GetCaller();
        var policy = _options.PolicyFor(caller?.Tenant ?? RequestCaller.Of(context).Tenant, caller?.Guard);
        if (policy == GuardPolicy.Off) { await _next(context); return; }

        request.EnableBuffering();
        JsonNode? body;
        try
        {
            body = await JsonNode.ParseAsync(request.Body, documentOptions: ParseOptions, cancellationToken: context.RequestAborted);
        }
        catch (Exception e) when (e is JsonException or BadHttpRequestException)
        {
            body = null; // the endpoint reads the body again and answers 400/413 in its own words
        }
        if (body is not JsonObject root)
        {
            request.Body.Position = 0;
            await _next(context);
            return;
        }

        var scanned = new List<string>();
        var changed = Visit(root, scanned);
        var verdict = Scan(scanned, policy);
        context.GetRequestUsage().GuardVerdict = verdict.ToAuditJson();
        _metrics.Record(verdict, policy);
        if (verdict.Decision == GuardDecision.Block)
        {
            context.GetRequestUsage().RejectionReason = "prompt_injection";
            throw new ApiException(StatusCodes.Status400BadRequest,
                $"The request was refused by the input guard as a likely prompt-injection attempt (rules: {(verdict.RuleIds.Count == 0 ? "none" : string.Join(", ", verdict.RuleIds))}; score {verdict.Score:F3}). " +
                "If this is a false positive, ask the operator to set this tenant's guard policy to flag.",
                "invalid_request_error", null, "prompt_injection");
        }
        if (changed)
        {
            var bytes = JsonSerializer.SerializeToUtf8Bytes(root);
            request.Body = new MemoryStream(bytes, writable: false);
            request.ContentLength = bytes.Length;
        }
        else
        {
            request.Body.Position = 0;
        }
        await _next(context);
    }

    public static bool IsGenerationRoute(PathString path) =>
        path.Equals("/v1/chat/completions", StringComparison.Ordinal) || path.Equals("/v1/completions", StringComparison.Ordinal)
        || path.Equals("/generate", StringComparison.Ordinal) || path.Equals("/generate_stream", StringComparison.Ordinal);

    /// <summary>Sanitizes the text fields in place and collects those to scan; true when any changed.</summary>
    private bool Visit(JsonObject root, List<string> scanned)
    {
        var changed = false;
        if (root["messages"] is JsonArray messages)
        {
            foreach (var message in messages)
            {
                if (message is not JsonObject m) continue;
                var role = m["role"] is JsonValue r && r.TryGetValue<string>(out var s) ? s : null;
                var scan = role is not ("system" or "developer" or "assistant");
                switch (m["content"])
                {
                    case JsonValue:
                        changed |= SanitizeField(m, "content", scan ? scanned : null);
                        break;
                    case JsonArray parts:
                        foreach (var part in parts)
                        {
                            if (part is JsonObject p) changed |= SanitizeField(p, "text", scan ? scanned : null);
                        }
                        break;
                }
            }
        }
        switch (root["prompt"])
        {
            case JsonValue:
                changed |= SanitizeField(root, "prompt", scanned);
                break;
            case JsonArray prompts:
                for (var i = 0; i < prompts.Count; i++)
                {
                    if (prompts[i] is JsonValue v && v.TryGetValue<string>(out var text))
                    {
                        var clean = _sanitizer.Sanitize(text);
                        scanned.Add(clean);
                        if (!ReferenceEquals(clean, text)) { prompts[i] = clean; changed = true; }
                    }
                }
                break;
        }
        changed |= SanitizeField(root, "inputs", scanned);
        return changed;
    }

    private bool SanitizeField(JsonObject owner, string name, List<string>? scanned)
    {
        if (owner[name] is not JsonValue value || !value.TryGetValue<string>(out var text)) return false;
        var clean = _sanitizer.Sanitize(text);
        scanned?.Add(clean);
        if (ReferenceEquals(clean, text)) return false;
        owner[name] = clean;
        return true;
    }

    /// <summary>The most severe verdict over the texts: highest decision, highest score, every rule hit.</summary>
    private InjectionVerdict Scan(List<string> texts, GuardPolicy policy)
    {
        if (texts.Count == 0) return new InjectionVerdict([], 0, GuardDecision.Allow);
        var rules = new SortedSet<string>(StringComparer.Ordinal);
        double score = 0;
        var decision = GuardDecision.Allow;
        foreach (var text in texts)
        {
            var v = _scanner.Scan(text, policy);
            rules.UnionWith(v.RuleIds);
            score = Math.Max(score, v.Score);
            if (v.Decision > decision) decision = v.Decision;
        }
        return new InjectionVerdict(rules.ToArray(), score, decision);
    }
}
