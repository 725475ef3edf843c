using System.Runtime.CompilerServices;
using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails.Input;

namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// The guard model as a stage of the input guard: decides whether a request is checked (every
/// request, those the fast detector flagged, or a sample), bounds the check (a maximum text length
/// and a timeout, both falling back to the configured decision, as do a failed check and a guard
/// model that is not being served), maps the verdict's categories to a decision with the tenant's
/// category policy, and records the check in metrics. The guard model is a model this server
/// serves (<see cref="ServedModels"/>), leased for the check, so it may be loaded, replaced or
/// served by an upstream pool like any other.
/// </summary>
/// <param name="random">Uniform in [0, 1) for <c>sample:&lt;rate&gt;</c>; tests inject their own.</param>
public sealed class GuardModelStage(GuardModelOptions options, ServedModels models, GuardModelMetrics metrics, TimeProvider time, Func<double>? random = null)
{
    private readonly Func<double> _random = random ?? Random.Shared.NextDouble;
    private readonly ConditionalWeakTable<IGenerationBackend, GuardModelClassifier> _classifiers = new();

    public GuardModelOptions Options => options;

    /// <summary>Whether the mode calls for a check, given the fast detector's decision.</summary>
    public bool Selects(GuardDecision fast) => options.Enabled && options.Mode.Kind switch
    {
        "every" => true,
        "flagged" => fast >= GuardDecision.Flag,
        "off" => false,
        _ => _random() < options.Mode.Rate,
    };

    /// <summary>
    /// Checks <paramref name="user"/>'s text (and with <paramref name="answer"/>, that answer) if the
    /// mode selects it; null when it does not. Cancelling <paramref name="cancellationToken"/> (the
    /// client left) throws; every other way a check can end is a <see cref="GuardModelCheck"/>.
    /// </summary>
    public async Task<GuardModelCheck?> CheckAsync(string stage, string user, string? answer, string? tenant, GuardDecision fast, CancellationToken cancellationToken)
    {
        if (!Selects(fast)) return null;
        var started = time.GetTimestamp();
        GuardModelCheck Fallback(string outcome) => new(outcome, null, options.Fallback, time.GetElapsedTime(started));
        GuardModelCheck check;
        if (user.Length + (answer?.Length ?? 0) > options.MaxPromptChars)
        {
            check = Fallback(GuardModelCheck.TooLong);
        }
        else if (models.TryAcquire(options.Model!) is not { } lease)
        {
            check = Fallback(GuardModelCheck.Unavailable);
        }
        else
        {
            using (lease)
            {
                var classifier = _classifiers.GetValue(lease.Backend, b => new GuardModelClassifier(b, options.Format));
                using var timeout = new CancellationTokenSource(options.Timeout, time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                try
                {
                    var verdict = await classifier.ClassifyAsync(user, answer, linked.Token, tenant).ConfigureAwait(false);
                    check = new GuardModelCheck(GuardModelCheck.Answered, verdict, options.PolicyFor(tenant).Decide(verdict), time.GetElapsedTime(started));
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    check = Fallback(GuardModelCheck.TimedOut);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Whatever went wrong (an answer out of format, the backend refusing), it stays here: the caller sees only the decision.
                    check = Fallback(GuardModelCheck.Failed);
                }
            }
        }
        metrics.Record(stage, check);
        return check;
    }
}
