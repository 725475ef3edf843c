using Bulwark.Engine.Evaluation.Safety;
using Bulwark.Server.Registry;

namespace Bulwark.Cli.Safety;

/// <summary>
/// Chooses the judge of <c>models check</c>'s safety part: the guard model named by
/// <c>--guard-model</c>, else the refusal detector (the weaker check). This is the one place a guard
/// model judge plugs in.
/// </summary>
internal static class SafetyJudges
{
    public static ISafetyJudge Create(string? guardModel)
    {
        if (guardModel is null) return new RefusalDetector();
        // The guard-model stage (issue 23) provides the classifier; until it is part of this build the
        // option is refused rather than silently falling back to the weaker judge.
        throw new RegistryException(
            $"--guard-model {guardModel}: this build of Bulwark has no guard-model judge yet; " +
            "leave the option out to judge answers with the refusal detector (the weaker check)");
    }
}
