using System.Text.Json;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>One llama2.c reference run of the 260K checkpoint (fixtures/model-260k/expected).</summary>
internal sealed record Stories260KReference(int[] PromptIds, int[] GeneratedIds, int? FirstLowMarginStep, float[][] Logits)
{
    public static readonly string[] Cases = ["bos-greedy-256", "prompt-a-greedy-128", "prompt-b-greedy-128"];

    public static Stories260KReference Load(string name)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Fixtures.PathOf("model-260k", "expected", $"expected-{name}.json")));
        var root = json.RootElement;
        int[] Ints(string key) => root.GetProperty(key).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var low = root.GetProperty("first_step_with_margin_below_1e-3");
        var raw = File.ReadAllBytes(Fixtures.PathOf("model-260k", "expected", $"logits-{name}.f32"));
        var floats = new float[raw.Length / 4];
        Buffer.BlockCopy(raw, 0, floats, 0, raw.Length);
        var rows = Enumerable.Range(0, 8).Select(i => floats.AsSpan(i * 512, 512).ToArray()).ToArray();
        return new(Ints("prompt_ids"), Ints("generated_ids"), low.ValueKind == JsonValueKind.Null ? null : low.GetInt32(), rows);
    }

    /// <summary>Generated steps that must match exactly: those before the first step with a margin under 1e-3.</summary>
    public int StepsThatMustMatch => FirstLowMarginStep ?? GeneratedIds.Length;
}
