using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;
using static Bulwark.Engine.Tests.Serving.EngineHarness;

namespace Bulwark.Engine.Tests.Serving;

public class EngineFactoryTests
{
    private const string ChatMl =
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    // The synthetic vocabulary ends with <|endoftext|>, <|im_start|>, <|im_end|>; EOS is <|im_end|>.
    private const int ImEnd = 299;

    private static readonly EngineOptions Small = new() { KvCacheBlocks = 64, BlockSize = 8 };

    [Fact]
    public async Task LoadsTokenizerTemplateAndEosAndServesTheSessionsGreedyIds()
    {
        var path = SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 300, ChatTemplate = ChatMl, Seed = 11 });
        using var loaded = EngineFactory.Load(path, Small);
        Assert.Equal("llama", loaded.ModelId);
        Assert.Equal(Path.GetFullPath(path), loaded.Path);
        Assert.Equal(new[] { ImEnd }, loaded.EosTokenIds);
        Assert.Equal(ChatMl, loaded.ChatTemplateSource);
        Assert.Null(loaded.ChatTemplateError);
        Assert.Equal("<|im_end|>", loaded.TemplateVariables()["eos_token"]);
        Assert.Equal("<|endoftext|>", loaded.TemplateVariables()["bos_token"]);
        Assert.Equal(256, loaded.ContextLength);

        using var messages = JsonDocument.Parse("""[{"role":"user","content":"hi"}]""");
        var text = loaded.ChatTemplate!.RenderChat(messages.RootElement, null, addGenerationPrompt: true, loaded.TemplateVariables());
        Assert.Equal("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", text);
        var prompt = loaded.Tokenizer.Encode(text, addSpecial: false, parseSpecial: true);
        Assert.Equal(ImEnd - 1, prompt[0]); // <|im_start|>

        var events = await CollectAsync(loaded.Engine, new EngineRequest
        {
            PromptTokens = prompt,
            Sampling = new SamplingParams { Temperature = 0, MaxTokens = 8, IgnoreEos = true },
        });
        using var model = SyntheticGguf.Load(new SyntheticModelSpec { Vocab = 300, Seed = 11 });
        Assert.Equal(StepDriver.Alone(model, prompt, 8).Ids, Ids(events));
    }

    [Fact]
    public void AnF16CacheHoldsTwiceTheBlocksOfTheSameBudget()
    {
        var path = SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 300, Seed = 11 });
        var budget = new EngineOptions { KvCacheMemoryBytes = 4L << 20, BlockSize = 8 };
        using var f32 = EngineFactory.Load(path, budget);
        using var f16 = EngineFactory.Load(path, budget with { KvCacheType = Bulwark.Engine.KvCache.KvCacheType.F16 });
        // floor(2B / p) is 2·floor(B / p) or one more.
        Assert.InRange(f16.Engine.Counters.KvBlocksTotal, 2 * f32.Engine.Counters.KvBlocksTotal, 2 * f32.Engine.Counters.KvBlocksTotal + 1);
    }

    [Fact]
    public async Task TheModelsEndOfTurnIdEndsAChoice()
    {
        using var loaded = EngineFactory.Load(SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 300 }), Small);
        var events = await CollectAsync(loaded.Engine, new EngineRequest
        {
            PromptTokens = [1, 2, 3],
            Sampling = new SamplingParams { Temperature = 0, MaxTokens = 8, LogitBias = new Dictionary<int, float> { [ImEnd] = 100 } },
        });
        Assert.Equal(ImEnd, Assert.Single(events).TokenId);
        Assert.Equal(FinishReason.Stop, events[0].FinishReason);
    }

    [Fact]
    public void ATemplateOutsideTheSupportedSubsetIsReportedAndCompletionsStillWork()
    {
        using var loaded = EngineFactory.Load(SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 300, ChatTemplate = "{% if %}" }), Small);
        Assert.Null(loaded.ChatTemplate);
        Assert.StartsWith("the model's chat template cannot be used: ", loaded.ChatTemplateError);
        Assert.Equal("{% if %}", loaded.ChatTemplateSource);
    }

    [Fact]
    public void AModelWithoutATemplateHasNone()
    {
        using var loaded = EngineFactory.Load(SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 300 }), Small, maxContextLength: 64);
        Assert.Null(loaded.ChatTemplate);
        Assert.Null(loaded.ChatTemplateSource);
        Assert.Null(loaded.ChatTemplateError);
        Assert.Equal(64, loaded.ContextLength);
    }

    [Fact]
    public async Task DisposeEndsRequestsInFlightWithAClearErrorAndFreesTheirBlocks()
    {
        var loaded = EngineFactory.Load(SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 300, Context = 4096 }),
            new EngineOptions { KvCacheBlocks = 1024, BlockSize = 8 });
        var engine = loaded.Engine;
        var request = new EngineRequest { PromptTokens = [1, 2, 3], Sampling = new SamplingParams { Temperature = 0, MaxTokens = 4000, IgnoreEos = true } };
        var started = new TaskCompletionSource();
        var running = Task.Run(async () =>
        {
            await foreach (var _ in engine.GenerateAsync(request))
                started.TrySetResult();
        });
        await started.Task;
        loaded.Dispose();
        var error = await Assert.ThrowsAsync<EngineStoppedException>(() => running);
        Assert.Contains("engine stopped", error.Message);
        Assert.Equal(0, engine.Counters.KvBlocksUsed);
        Assert.Equal(0, engine.Counters.Running);
        Assert.True(engine.Counters.GeneratedTokens < 4000);
        await Assert.ThrowsAsync<EngineStoppedException>(() => CollectAsync(engine, request));
        loaded.Dispose(); // twice is harmless
    }

    [Fact]
    public async Task AHuggingFaceFolderServesTheSameModelAsItsGguf()
    {
        var spec = new SyntheticModelSpec { Vocab = 300, ChatTemplate = ChatMl, Seed = 12 };
        var folder = Fixtures.NewTempDirectory();
        SyntheticModel.WriteSafetensors(spec, folder);
        using var fromFolder = EngineFactory.Load(folder, Small);
        using var fromGguf = EngineFactory.Load(SyntheticGguf.Write(spec), Small);
        Assert.Equal(Path.GetFileName(folder), fromFolder.ModelId);
        Assert.Equal(ChatMl, fromFolder.ChatTemplateSource);
        Assert.Equal(fromGguf.EosTokenIds, fromFolder.EosTokenIds);
        var request = new EngineRequest { PromptTokens = [5, 77, 123, 9], Sampling = new SamplingParams { Temperature = 0, MaxTokens = 6, IgnoreEos = true } };
        Assert.Equal(Ids(await CollectAsync(fromGguf.Engine, request)), Ids(await CollectAsync(fromFolder.Engine, request)));
    }

    [Fact]
    public void MissingOrUnsupportedPathsSayWhatIsWrong()
    {
        var missing = Path.Combine(Fixtures.NewTempDirectory(), "none.gguf");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => EngineFactory.Load(missing)).Message);
        var empty = Fixtures.NewTempDirectory();
        Assert.Contains("no tokenizer.json", Assert.Throws<FileNotFoundException>(() => EngineFactory.Load(empty)).Message);
    }
}
