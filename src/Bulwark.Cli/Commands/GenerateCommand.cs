using System.Buffers.Binary;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Randomness;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Server;

namespace Bulwark.Cli.Commands;

/// <summary>
/// <c>bulwark generate</c>: run one prompt through a model on the reference forward pass and
/// print the continuation. Without <c>--model</c> it uses the demo model, created once in the
/// data directory.
/// </summary>
internal static class GenerateCommand
{
    public const string DemoFileName = Bulwark.Server.Models.ModelSource.DemoFileName;
    public const int MaxTokensLimit = 1 << 20;
    public const float MaxTemperature = 100f;

    // Text stays readable (non-ASCII unescaped); this is terminal output, never embedded in HTML.
    private static readonly JsonSerializerOptions ReadableJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private sealed record Request(string? Model, string? Prompt, string? PromptIds, int MaxTokens, float Temperature,
        long Seed, bool Json, string? DumpLogits, string? DataDir, string? Quantize);

    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = $"A .gguf file or a Hugging Face folder (config.json, *.safetensors, tokenizer.json). Default: the demo model, {DemoFileName} in the data directory, created on first use." };
        var prompt = new Option<string?>("--prompt") { Description = "Prompt text, tokenized with the model's tokenizer." };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as comma-separated token ids, e.g. 1,2,3." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens to generate at most (generation also stops at end of sequence).", DefaultValueFactory = _ => 64 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 is greedy.", DefaultValueFactory = _ => 0.8f };
        var seed = new Option<long>("--seed") { Description = "Seed of the sampler: the same seed gives the same text.", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: {\"prompt_ids\":[...],\"ids\":[...],\"text\":\"...\"}." };
        var dumpLogits = new Option<string?>("--dump-logits") { Description = "Write the logits of each generated step to FILE: float32 little-endian, one vocabulary-sized row per step." };
        var dataDir = CommonOptions.DataDir();
        var quantize = QuantizeOption.Create();
        var command = new Command("generate", "Generate text from a prompt with a local model (the demo model when --model is not given).")
        {
            model, prompt, promptIds, maxTokens, temperature, seed, json, dumpLogits, dataDir, quantize,
        };
        command.SetAction(r =>
        {
            var request = new Request(r.GetValue(model), r.GetValue(prompt), r.GetValue(promptIds), r.GetValue(maxTokens),
                r.GetValue(temperature), r.GetValue(seed), r.GetValue(json), r.GetValue(dumpLogits), r.GetValue(dataDir), r.GetValue(quantize));
            var stderr = r.InvocationConfiguration.Error;
            try
            {
                return Run(request, r.InvocationConfiguration.Output, stderr);
            }
            catch (Exception e) when (e is ArgumentException or IOException or Engine.Formats.ModelFormatException or UnauthorizedAccessException or NotSupportedException)
            {
                stderr.WriteLine("error: " + e.Message);
                return 2;
            }
        });
        return command;
    }

    private static int Run(Request request, TextWriter stdout, TextWriter stderr)
    {
        if ((request.Prompt is null) == (request.PromptIds is null))
            throw new ArgumentException("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
        if (request.MaxTokens < 1 || request.MaxTokens > MaxTokensLimit)
            throw new ArgumentException($"--max-tokens must be between 1 and {MaxTokensLimit}; got {request.MaxTokens}");
        if (!(request.Temperature >= 0f && request.Temperature <= MaxTemperature))
            throw new ArgumentException($"--temperature must be between 0 and {MaxTemperature}; got {request.Temperature}");
        var sampling = new SamplingParams { Temperature = request.Temperature, Seed = request.Seed, MaxTokens = request.MaxTokens };
        var quantizeTo = LoadQuantization.Parse(request.Quantize);

        var path = request.Model ?? DemoModel(request.DataDir, stderr);
        using var model = ModelLoader.Load(path, new ModelLoadOptions { QuantizeTo = quantizeTo, Notice = stderr.WriteLine });
        var config = model.Config;
        var tokenizer = TryLoadTokenizer(path, request.Prompt is not null, stderr);
        var promptIds = request.PromptIds is { } ids ? ParseIds(ids, config.VocabularySize) : tokenizer!.Encode(request.Prompt!);
        if (promptIds.Length == 0)
            throw new ArgumentException("the prompt is empty: it encodes to no tokens (the model adds no BOS)");
        // The last generated token is never fed back, so the session needs prompt + max - 1 positions.
        var positions = (long)promptIds.Length + request.MaxTokens - 1;
        if (positions > config.ContextLength)
            throw new ArgumentException($"the prompt's {promptIds.Length} tokens plus --max-tokens {request.MaxTokens} need {positions} positions; the model's context is {config.ContextLength}");

        using var logitsFile = request.DumpLogits is { } dump ? new FileStream(dump, FileMode.Create, FileAccess.Write) : null;
        var decoder = tokenizer?.CreateIncrementalDecoder();
        if (!request.Json && tokenizer is not null && request.Prompt is not null) stdout.Write(request.Prompt);
        var generated = Generate(model, (int)positions, promptIds, sampling, tokenizer, (token, logits) =>
        {
            if (logitsFile is not null) WriteRow(logitsFile, logits);
            if (request.Json) return;
            if (decoder is not null) stdout.Write(decoder.Push(token));
            else stdout.Write(token.ToString(CultureInfo.InvariantCulture) + " ");
            stdout.Flush();
        });

        if (request.Json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["prompt_ids"] = promptIds,
                ["ids"] = generated,
                ["text"] = tokenizer?.Decode(generated.ToArray()),
            }, ReadableJson));
        }
        else
        {
            if (decoder is not null) stdout.Write(decoder.Flush());
            stdout.WriteLine();
        }
        return 0;
    }

    /// <summary>
    /// Feeds the prompt, then samples up to <c>MaxTokens</c> tokens, stopping after an end-of-generation
    /// token (EOS or end of turn) when the tokenizer names one. <paramref name="onToken"/> sees each
    /// token with the raw logits it was sampled from.
    /// </summary>
    internal static List<int> Generate(LlamaModel model, int contextLength, int[] prompt, SamplingParams sampling, ITokenizer? tokenizer,
        Action<int, ReadOnlySpan<float>> onToken)
    {
        using var session = new LlamaSession(model, contextLength);
        var sampler = new Sampler(model.Config.VocabularySize);
        var random = new SplitMixRandom(SplitMixRandom.DeriveSeed(sampling.Seed ?? 0, 0));
        var output = new List<int>(sampling.MaxTokens);
        ReadOnlySpan<float> logits = default;
        for (var p = 0; p < prompt.Length; p++) logits = session.Forward(prompt[p], p);
        var stop = new HashSet<int>();
        if (tokenizer is not null)
        {
            if (tokenizer.Special.Eos >= 0) stop.Add(tokenizer.Special.Eos);
            if (tokenizer.Special.EndOfTurn >= 0) stop.Add(tokenizer.Special.EndOfTurn);
        }
        while (true)
        {
            var token = sampler.Sample(logits, sampling, prompt, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(output), ref random, out _, []);
            output.Add(token);
            onToken(token, logits);
            if (output.Count == sampling.MaxTokens || stop.Contains(token)) return output;
            logits = session.Forward(token, prompt.Length + output.Count - 1);
        }
    }

    /// <summary>The demo model's path in the data directory, writing it first if it is not there.</summary>
    private static string DemoModel(string? dataDir, TextWriter stderr)
    {
        var directory = DataDirectory.Resolve(dataDir).EnsureCreated();
        var path = Path.Combine(directory.ModelsPath, DemoFileName);
        if (SyntheticModel.WriteDemoGgufIfMissing(path))
            stderr.WriteLine($"bulwark: created the demo model {path}");
        stderr.WriteLine($"bulwark: using the demo model: its weights are random, so its text is gibberish. For real text pass --model FILE.gguf or a Hugging Face folder (llama, mistral, qwen2 or qwen3; F32, F16, BF16, Q8_0 or Q4_0 weights).");
        return path;
    }

    private static ITokenizer? TryLoadTokenizer(string path, bool required, TextWriter stderr)
    {
        try
        {
            return TokenizerLoader.FromPath(path);
        }
        catch (Exception e) when (!required && e is Engine.Formats.ModelFormatException or IOException or NotSupportedException)
        {
            stderr.WriteLine($"bulwark: no usable tokenizer in {path} ({e.Message}); printing token ids");
            return null;
        }
    }

    private static int[] ParseIds(string text, int vocabularySize)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var ids = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]) || ids[i] >= vocabularySize)
                throw new ArgumentException($"--prompt-ids: each id must be an integer between 0 and {vocabularySize - 1}; got \"{parts[i]}\" at position {i}");
        }
        return ids;
    }

    private static void WriteRow(Stream stream, ReadOnlySpan<float> logits)
    {
        Span<byte> value = stackalloc byte[4];
        foreach (var v in logits)
        {
            BinaryPrimitives.WriteSingleLittleEndian(value, v);
            stream.Write(value);
        }
    }
}
