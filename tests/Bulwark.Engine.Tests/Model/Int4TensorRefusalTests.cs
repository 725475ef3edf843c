using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// AWQ/GPTQ checkpoints with one tensor or config value broken: each is refused with a <see cref="ModelFormatException"/>
/// naming the tensor (or key), never another exception.
/// </summary>
public class Int4TensorRefusalTests
{
    private const string Q = "model.layers.0.self_attn.q_proj";

    private static readonly SyntheticModelSpec Spec = new() { Architecture = "llama", Layers = 1, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 300, Seed = 3 };

    private delegate SafetensorsTensor? Mutation(SafetensorsTensor tensor);

    private sealed record SafetensorsTensor(string Name, GgmlType Type, long[] Shape, byte[] Data);

    /// <summary>A valid checkpoint with every tensor passed through <paramref name="mutate"/> (null drops it) and extra ones added.</summary>
    private static string Checkpoint(Int4Method method, Mutation mutate, Action<JsonObject>? config = null, bool actOrder = false, params SafetensorsTensor[] extra)
    {
        var folder = Path.Combine(Fixtures.NewTempDirectory(), "m");
        SyntheticInt4.Write(Spec, folder, new Int4WriteOptions { Method = method, GroupSize = 32, ActOrder = actOrder, Symmetric = method == Int4Method.Gptq ? false : null });
        var path = Path.Combine(folder, "model.safetensors");
        var writer = new SafetensorsWriter();
        using (var file = SafetensorsFile.Open(path))
            foreach (var info in file.Tensors)
                if (mutate(new SafetensorsTensor(info.Name, info.Type, info.Shape, file.TensorBytes(info).ToArray())) is { } t)
                    writer.AddTensor(t.Name, t.Type, t.Shape, t.Data);
        foreach (var t in extra) writer.AddTensor(t.Name, t.Type, t.Shape, t.Data);
        writer.WriteTo(path);
        if (config is not null)
        {
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
            config(json["quantization_config"]!.AsObject());
            File.WriteAllText(Path.Combine(folder, "config.json"), json.ToJsonString());
        }
        return folder;
    }

    private static Mutation On(string name, Func<SafetensorsTensor, SafetensorsTensor?> change) => t => t.Name == name ? change(t) : t;

    private static string Refusal(string folder)
    {
        var e = Record.Exception(() => ModelLoader.Load(folder).Dispose());
        Assert.True(e is ModelFormatException, $"expected ModelFormatException, got {e?.GetType().Name}: {e}");
        return e!.Message;
    }

    [Fact]
    public void TheUnbrokenCheckpointsLoad()
    {
        // Otherwise every refusal below could be for another reason.
        using (var awq = ModelLoader.Load(Checkpoint(Int4Method.Awq, t => t))) Assert.Equal(GgmlType.Q4_1, awq.Weights.Layers[0].Query.Type);
        using var gptq = ModelLoader.Load(Checkpoint(Int4Method.Gptq, t => t, actOrder: true));
        Assert.NotNull(gptq.Weights.Layers[0].Query.InputOrder);
    }

    [Fact]
    public void WrongShapesAndTypesAreRefusedByTensor()
    {
        Assert.Contains($"{Q}.qweight: shape [64, 4] does not match [64, 8] that the config and AWQ 4-bit (group 32) give",
            Refusal(Checkpoint(Int4Method.Awq, On(Q + ".qweight", t => t with { Shape = [64, 4], Data = t.Data[..(t.Data.Length / 2)] }))));
        Assert.Contains($"{Q}.qweight: shape [64, 8] does not match [8, 64]",
            Refusal(Checkpoint(Int4Method.Gptq, On(Q + ".qweight", t => t with { Shape = [64, 8] }))));
        Assert.Contains($"{Q}.qzeros: must be I32 for AWQ 4-bit (group 32); got F32",
            Refusal(Checkpoint(Int4Method.Awq, On(Q + ".qzeros", t => t with { Type = GgmlType.F32 }))));
        Assert.Contains($"{Q}.scales: must be F16 for GPTQ 4-bit (group 32); got BF16",
            Refusal(Checkpoint(Int4Method.Gptq, On(Q + ".scales", t => t with { Type = GgmlType.BF16 }))));
        Assert.Contains($"{Q}.scales: tensor is missing",
            Refusal(Checkpoint(Int4Method.Awq, On(Q + ".scales", _ => null))));
        Assert.Contains($"{Q}.g_idx: shape [32] does not match [64]",
            Refusal(Checkpoint(Int4Method.Gptq, On(Q + ".g_idx", t => t with { Shape = [32], Data = t.Data[..128] }))));
    }

    [Fact]
    public void BadValuesAreRefusedByTensor()
    {
        static SafetensorsTensor Int(SafetensorsTensor t, int index, int value)
        {
            var data = (byte[])t.Data.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(index * 4), value);
            return t with { Data = data };
        }
        Assert.Contains($"{Q}.g_idx: entry 5 is 2; groups are 0 to 1",
            Refusal(Checkpoint(Int4Method.Gptq, On(Q + ".g_idx", t => Int(t, 5, 2)))));
        Assert.Contains($"{Q}.g_idx: entry 5 is -1",
            Refusal(Checkpoint(Int4Method.Gptq, On(Q + ".g_idx", t => Int(t, 5, -1)))));
        // Act order with groups that do not fill whole 32-input blocks: input 0 moved to the other group.
        Assert.Contains($"{Q}.g_idx: group 0 holds 31 inputs; act order (desc_act) is supported when every group holds a multiple of 32",
            Refusal(Checkpoint(Int4Method.Gptq, On(Q + ".g_idx", t =>
                Int(t, Enumerable.Range(0, 64).First(i => BinaryPrimitives.ReadInt32LittleEndian(t.Data.AsSpan(i * 4)) == 0), 1)))));
        Assert.Contains($"{Q}.scales: holds a scale that is not finite",
            Refusal(Checkpoint(Int4Method.Awq, On(Q + ".scales", t =>
            {
                var data = (byte[])t.Data.Clone();
                BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(6), Half.PositiveInfinity);
                return t with { Data = data };
            }))));
        Assert.Contains($"{Q}.weight: is stored both unquantized and as {Q}.qweight",
            Refusal(Checkpoint(Int4Method.Awq, t => t, extra: new SafetensorsTensor(Q + ".weight", GgmlType.F32, [64, 64], new byte[64 * 64 * 4]))));
    }

    [Fact]
    public void ConfigsThatDoNotFitTheTensorsAreRefusedByTensor()
    {
        // group_size 128 does not divide the 64 inputs of q_proj (at the limit: 64 does, see Int4CheckpointTests).
        Assert.Contains($"{Q}.qweight: input width 64 must be a multiple of 32 and of quantization_config.group_size 128",
            Refusal(Checkpoint(Int4Method.Awq, t => t, c => c["group_size"] = 128)));
        Assert.Contains($"{Q}.g_idx: tensor is missing (quantization_config.desc_act is true",
            Refusal(Checkpoint(Int4Method.Gptq, t => t.Name.EndsWith(".g_idx") ? null : t, c => c["desc_act"] = true)));
        // A GPTQ folder read as AWQ: the packing axis differs, so the shapes do not match.
        Assert.Contains($"{Q}.qweight: shape [8, 64] does not match [64, 8]",
            Refusal(Checkpoint(Int4Method.Gptq, t => t, c => c["quant_method"] = "awq")));
    }
}
