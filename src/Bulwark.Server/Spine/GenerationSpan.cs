using System.Diagnostics;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Spine;

/// <summary>
/// The span of stages 8–9 for one admitted request, named as the GenAI semantic conventions name an
/// inference span (<c>chat MODEL</c>, <c>text_completion MODEL</c>): the request's parameters when it
/// starts, the token counts and finish reasons when it ends. Its children are the prefill and decode
/// spans and, for a model an upstream serves, one client span per upstream attempt. Numbers and codes
/// only: never the messages, the prompt or the generated text.
/// </summary>
internal static class GenerationSpan
{
    public static Activity? Start(GenerationRequest request, string model)
    {
        if (!BulwarkTracing.Source.HasListeners()) return null;
        var operation = request.Messages is not null ? "chat" : "text_completion";
        var span = BulwarkTracing.Source.StartActivity(operation + " " + model);
        if (span is not { IsAllDataRequested: true }) return span;
        var sampling = request.Sampling;
        span.SetTag(BulwarkTracing.Attributes.OperationName, operation);
        span.SetTag(BulwarkTracing.Attributes.RequestModel, request.Model);
        span.SetTag(BulwarkTracing.Attributes.RequestMaxTokens, sampling.MaxTokens);
        span.SetTag(BulwarkTracing.Attributes.RequestTemperature, (double)sampling.Temperature);
        span.SetTag(BulwarkTracing.Attributes.RequestTopP, (double)sampling.TopP);
        if (sampling.TopK > 0) span.SetTag(BulwarkTracing.Attributes.RequestTopK, sampling.TopK);
        if (sampling.FrequencyPenalty != 0) span.SetTag(BulwarkTracing.Attributes.RequestFrequencyPenalty, (double)sampling.FrequencyPenalty);
        if (sampling.PresencePenalty != 0) span.SetTag(BulwarkTracing.Attributes.RequestPresencePenalty, (double)sampling.PresencePenalty);
        if (sampling.Seed is { } seed) span.SetTag(BulwarkTracing.Attributes.RequestSeed, seed);
        if (request.Choices != 1) span.SetTag(BulwarkTracing.Attributes.RequestChoiceCount, request.Choices);
        span.SetTag(BulwarkTracing.Attributes.Stream, request.Stream);
        span.SetTag(BulwarkTracing.Attributes.Priority, request.Priority);
        return span;
    }

    /// <param name="failed">The reason code when the generation failed (a 503 on shutdown, an upstream failure), else null.</param>
    public static void End(Activity? span, GenerationRun? run, string? failed)
    {
        if (span is null) return;
        if (run is not null && span.IsAllDataRequested)
        {
            span.SetTag(BulwarkTracing.Attributes.ResponseModel, run.Request.Model);
            span.SetTag(BulwarkTracing.Attributes.InputTokens, run.PromptTokens);
            span.SetTag(BulwarkTracing.Attributes.OutputTokens, run.CompletionTokens);
            if (run.FinishReasons is { Length: > 0 } reasons) span.SetTag(BulwarkTracing.Attributes.FinishReasons, reasons);
            if (run.DeadlinePassed) span.SetTag(BulwarkTracing.Attributes.DeadlinePassed, true);
            if (run.Upstream is { } pool) span.SetTag(BulwarkTracing.Attributes.UpstreamPool, pool);
        }
        if (failed is not null) BulwarkTracing.Fail(span, failed);
        else span.Stop();
    }
}
