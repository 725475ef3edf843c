using System.Text.Json.Nodes;
using Bulwark.Engine.Conversion;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// A Mistral folder with <c>sliding_window</c> loads as sliding-window attention on every layer (llama.cpp has no
/// oracle for it: its Mistral GGUFs carry no window), computing what the same weights compute with the window set
/// by hand; converting it to GGUF, which cannot carry the window, caps the file's context at the window so the
/// GGUF stays exact.
/// </summary>
public class MistralSlidingWindowTests
{
    private const int Window = 5;

    [Fact]
    public void AMistralFolderWithAWindowAttendsThroughItAndConvertsCapped()
    {
        var dir = Fixtures.NewTempDirectory();
        try
        {
            var spec = new SyntheticModelSpec { Layers = 2, Seed = 51 };
            var folder = Path.Combine(dir, "mistral");
            SyntheticModel.WriteSafetensors(spec, folder);
            var configPath = Path.Combine(folder, "config.json");
            var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
            config["model_type"] = "mistral";
            config["architectures"] = new JsonArray("MistralForCausalLM");
            config["sliding_window"] = Window;
            File.WriteAllText(configPath, config.ToJsonString());

            using var mistral = ModelLoader.Load(folder);
            Assert.Equal((ModelArchitecture.Mistral, Window, true, spec.Context), (mistral.Config.Architecture, mistral.Config.SlidingWindow, mistral.Config.EveryLayerWindowed, mistral.Config.ContextLength));
            var gguf = Path.Combine(dir, "llama.gguf");
            SyntheticModel.WriteGguf(spec, gguf);
            using var llama = ModelLoader.Load(gguf);
            var byHand = new LlamaModel(llama.Config with { SlidingWindow = Window }, llama.Weights);
            using var a = new LlamaSession(mistral, 3 * Window);
            using var b = new LlamaSession(byHand, 3 * Window);
            for (var p = 0; p < 3 * Window; p++)
            {
                var token = (p * 31 + 7) % spec.Vocab;
                var x = a.Forward(token, p).ToArray();
                var y = b.Forward(token, p);
                var scale = x.Max(MathF.Abs);
                for (var v = 0; v < x.Length; v++)
                    Assert.True(MathF.Abs(x[v] - y[v]) <= 1e-4f * scale, $"position {p} logit {v}: mistral folder {x[v]}, windowed gguf {y[v]}");
            }

            var converted = Path.Combine(dir, "converted.gguf");
            HuggingFaceToGguf.Convert(folder, converted);
            using var file = GgufFile.Open(converted);
            Assert.Equal(Window, file.GetIntegerOrNull("llama.context_length"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
