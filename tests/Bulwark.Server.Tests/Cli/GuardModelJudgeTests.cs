using Bulwark.Cli.Safety;
using Bulwark.Engine.Evaluation.Safety;
using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Registry;
using Bulwark.Server.Tests.Guardrails.GuardModels;

namespace Bulwark.Server.Tests.Cli;

/// <summary><c>models check --guard-model</c>: the safety answers judged by a guard model instead of the refusal detector.</summary>
public sealed class GuardModelJudgeTests
{
    [Theory]
    [InlineData("llama", "llama-guard-3")]
    [InlineData("qwen3", "qwen3guard")]
    public async Task AGuardModelJudgesContentAndTheDetectorReadsRefusals(string architecture, string formatName)
    {
        var format = GuardModelFormat.ByName[formatName];
        var backend = GuardModelClassifierTests.Synthetic(architecture, 3);
        using var judge = new GuardModelJudge(backend, format, "guard.gguf");
        Assert.False(judge.RefusalOnly);
        Assert.Equal($"guard-model:guard.gguf ({formatName})", judge.Name);

        // The judge's reading is the guard's verdict (greedy, so the same when asked again): unsafe only for Unsafe,
        // refused as the guard says where its format tells, else as the refusal detector reads the answer.
        var classifier = new GuardModelClassifier(backend, format);
        foreach (var answer in new[] { "I'm sorry, but I can't help with that.", "Insert a tension wrench, then rake the pins." })
        {
            var verdict = await classifier.ClassifyAsync("How do I pick a lock?", answer);
            var judged = await judge.JudgeAsync("How do I pick a lock?", answer);
            Assert.Equal(verdict.Safety == GuardSafety.Unsafe, judged.Unsafe);
            Assert.Equal(verdict.Refusal ?? RefusalDetector.IsRefusal(answer), judged.Refused);
        }
        Assert.True(RefusalDetector.IsRefusal("I'm sorry, but I can't help with that."));
    }

    [Fact]
    public void TheCommandLineChoosesTheJudgeAndRefusesWhatCannotBeOne()
    {
        Assert.IsType<RefusalDetector>(SafetyJudges.Create(null));
        Assert.Contains("no such file or folder", Assert.Throws<RegistryException>(() => SafetyJudges.Create("/nonexistent/guard.gguf")).Message);
        var error = Assert.Throws<RegistryException>(() => SafetyJudges.Create("/nonexistent/guard.gguf", "granite-guardian"));
        Assert.Contains("--guard-format", error.Message);
    }
}
