using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Admission;

/// <summary>
/// The admission stage as the API sees it: waits for a slot, records the queue time, and turns
/// a refusal into the right OpenAI error — 429 when the queue is full or the request was shed for a
/// higher-priority one (code <c>shed</c>), 503 on a wait timeout or
/// during shutdown — always with <c>Retry-After</c>, and counts it by reason.
/// </summary>
public sealed class AdmissionGate(AdmissionQueue queue, AdmissionOptions options, ServerMetrics metrics, TimeProvider time)
{
    public async ValueTask<AdmissionLease> EnterAsync(int priority, CancellationToken cancellationToken)
    {
        var start = time.GetTimestamp();
        try
        {
            var lease = await queue.EnterAsync(priority, cancellationToken);
            metrics.QueueTime.Record(time.GetElapsedTime(start).TotalSeconds);
            return lease;
        }
        catch (AdmissionRejectedException e)
        {
            var (status, code, reason) = e.Reason switch
            {
                RejectionReason.QueueFull => (StatusCodes.Status429TooManyRequests, "queue_full", "queue_full"),
                RejectionReason.QueueTimeout => (StatusCodes.Status503ServiceUnavailable, "queue_timeout", "queue_timeout"),
                RejectionReason.Shed => (StatusCodes.Status429TooManyRequests, "shed", "shed"),
                _ => (StatusCodes.Status503ServiceUnavailable, "server_shutting_down", "shutting_down"),
            };
            metrics.Rejected.Add(1, new KeyValuePair<string, object?>("reason", reason));
            throw new ApiException(status, e.Message, status == 429 ? "rate_limit_exceeded" : "server_error", null, code, options.RetryAfter);
        }
    }
}
