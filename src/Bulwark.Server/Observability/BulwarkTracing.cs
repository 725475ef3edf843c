using System.Diagnostics;
using Bulwark.Engine.Serving;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Observability;

/// <summary>
/// The spans Bulwark makes itself (docs/tracing.md): one <see cref="ActivitySource"/>, the names of
/// its spans and attributes, and how a failed stage is marked. With tracing off nothing listens to
/// the source, <see cref="Start"/> returns null at the cost of one check, and no tag is computed.
/// Attributes follow the OpenTelemetry GenAI semantic conventions where one exists (<c>gen_ai.*</c>);
/// the rest are <c>bulwark.*</c>. No attribute, event or status ever holds a prompt, a completion,
/// an API key or any other text a client sent: only ids, counts, codes and the server's own names.
/// </summary>
public static class BulwarkTracing
{
    public const string SourceName = "Bulwark";

    public static readonly ActivitySource Source = new(SourceName);

    // Stage spans, children of the HTTP server span, in the order the spine runs them.
    public const string Identity = "bulwark.identity";
    public const string Policy = "bulwark.policy";
    public const string Contract = "bulwark.contract";
    public const string InputGuard = "bulwark.input_guard";
    public const string Prompt = "bulwark.prompt";
    public const string TokenQuota = "bulwark.token_quota";
    public const string Queue = "bulwark.queue";
    // Children of the generation span ("chat MODEL" / "text_completion MODEL").
    public const string Prefill = "bulwark.prefill";
    public const string Decode = "bulwark.decode";
    public const string OutputGuard = "bulwark.output_guard";

    /// <summary>A span of <paramref name="name"/> (child of the current span, or of <paramref name="parent"/>); null when nothing records it.</summary>
    public static Activity? Start(string name, ActivityKind kind = ActivityKind.Internal, Activity? parent = null)
    {
        // Perf: with tracing off the source has no listener and this is the whole cost of a span.
        if (!Source.HasListeners()) return null;
        return parent is null ? Source.StartActivity(name, kind) : Source.StartActivity(name, kind, parent.Context);
    }

    /// <summary>Marks <paramref name="activity"/> failed with a reason code (a refusal reason or an error code, never a message or text) and ends it.</summary>
    public static void Fail(Activity? activity, string reason)
    {
        if (activity is null) return;
        activity.SetStatus(ActivityStatusCode.Error, reason);
        activity.SetTag(Attributes.RefusalReason, reason);
        activity.Stop();
    }

    /// <summary>
    /// The reason code of a failure: the refusal reason the stage recorded, else the API error's code,
    /// else the exception's type name (an unexpected failure; never its message, which may quote input).
    /// </summary>
    public static string ReasonOf(Exception e, RequestUsage? usage) =>
        usage?.RejectionReason ?? (e as ApiException)?.Code ?? (e is OperationCanceledException ? "cancelled" : e.GetType().Name);

    /// <summary>OpenAI's name of a finish reason (<c>deadline</c> kept apart: it is vLLM's <c>stop_reason</c>).</summary>
    public static string Name(FinishReason finish) => finish switch
    {
        FinishReason.Length => "length",
        FinishReason.Deadline => "deadline",
        FinishReason.ContentFilter => "content_filter",
        _ => "stop",
    };

    /// <summary>The attribute names, GenAI semantic conventions first.</summary>
    public static class Attributes
    {
        public const string OperationName = "gen_ai.operation.name";
        public const string RequestModel = "gen_ai.request.model";
        public const string ResponseModel = "gen_ai.response.model";
        public const string RequestMaxTokens = "gen_ai.request.max_tokens";
        public const string RequestTemperature = "gen_ai.request.temperature";
        public const string RequestTopP = "gen_ai.request.top_p";
        public const string RequestTopK = "gen_ai.request.top_k";
        public const string RequestSeed = "gen_ai.request.seed";
        public const string RequestChoiceCount = "gen_ai.request.choice.count";
        public const string RequestFrequencyPenalty = "gen_ai.request.frequency_penalty";
        public const string RequestPresencePenalty = "gen_ai.request.presence_penalty";
        public const string InputTokens = "gen_ai.usage.input_tokens";
        public const string OutputTokens = "gen_ai.usage.output_tokens";
        public const string FinishReasons = "gen_ai.response.finish_reasons";

        public const string KeyId = "bulwark.key_id";
        public const string Tenant = "bulwark.tenant";
        public const string RequestId = "bulwark.request_id";
        public const string RefusalReason = "bulwark.refusal_reason";
        public const string Stream = "bulwark.stream";
        public const string PromptExact = "bulwark.prompt.exact";
        public const string QueueWait = "bulwark.queue.wait_seconds";
        public const string Priority = "bulwark.priority";
        public const string GuardDecision = "bulwark.input_guard.decision";
        public const string GuardRules = "bulwark.input_guard.rules";
        public const string OutputRedactions = "bulwark.output_guard.redactions";
        public const string OutputBlocked = "bulwark.output_guard.blocked_choices";
        public const string OutputBusy = "bulwark.output_guard.busy_seconds";
        public const string DeadlinePassed = "bulwark.deadline_passed";
        public const string UpstreamPool = "bulwark.upstream.pool";
        public const string UpstreamEndpoint = "bulwark.upstream.endpoint";
        public const string UpstreamOutcome = "bulwark.upstream.outcome";
        public const string UpstreamAttempt = "bulwark.upstream.attempt";
    }
}
