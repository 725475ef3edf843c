using System.Text.Json;

namespace Bulwark.Engine.Model.Config;

/// <summary>
/// SmolLM3's layers without RoPE, as transformers' <c>SmolLM3Config</c> spells them: <c>no_rope_layer_interval</c>
/// (default 4) and the per-layer list <c>no_rope_layers</c> (1: the layer rotates, 0: it does not), which
/// transformers derives from the interval when absent. Only the interval's pattern is accepted: it is all a
/// <see cref="LlamaConfig"/> (and llama.cpp, which fixes the step at 4) can express.
/// </summary>
internal static class HfConfigNoRope
{
    public static int Step(HfConfigFields f)
    {
        var layers = f.Int("num_hidden_layers", 1, 4096);
        var interval = f.Int("no_rope_layer_interval", 1, 4096, 4);
        if (!f.TryGet("no_rope_layers", out var list)) return interval;
        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() != layers)
            throw f.Error("no_rope_layers", $"must be an array of {layers} entries (one per layer, 1: RoPE, 0: none); got {HfConfigFields.Show(list)}");
        var i = 0;
        foreach (var entry in list.EnumerateArray())
        {
            var expected = (i + 1) % interval != 0 ? 1 : 0;
            if (entry.ValueKind != JsonValueKind.Number || !entry.TryGetInt32(out var value) || value is not (0 or 1))
                throw f.Error("no_rope_layers", $"entry {i} must be 0 or 1; got {HfConfigFields.Show(entry)}");
            if (value != expected)
                throw f.Error("no_rope_layers", $"entry {i} is {value}, but only the pattern of no_rope_layer_interval {interval} is supported (no RoPE in every {interval}th layer), which gives {expected}");
            i++;
        }
        return interval;
    }
}
