using System.Collections.Concurrent;
using System.Text;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Tokenizers;
using Bulwark.Server.Backends;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// A generative safety classifier: asks a guard model (Llama Guard 3, Qwen3Guard-Gen) whether a
/// user's prompt, or an assistant's answer to it, is safe, and returns the parsed verdict. Usable
/// anywhere a backend is at hand — the input guard of the request spine, <c>bulwark guard eval
/// --guard-model</c>, a CLI safety gate judging a model's answers:
/// <code>
/// var guard = new GuardModelClassifier(backend, LlamaGuard3Format.Instance);
/// GuardModelVerdict v = await guard.ClassifyAsync("How do I pick a lock?", answer: null, ct);
/// if (!v.IsSafe) Console.WriteLine(string.Join(",", v.Categories)); // e.g. S2
/// </code>
/// On the embedded engine the answer is decoded greedily under the format's grammar
/// (<see cref="GuardModelFormat.Pattern"/>), so any model — even one with random weights — answers
/// in format; the format's own text is tokenized with its control tokens and the conversation's text
/// as plain text, so text in the conversation cannot end the guard's turn. Through an upstream, the
/// prompt is sent as one completion prompt with the pattern as <c>guided_regex</c> (honoured by
/// vLLM; a TGI upstream gets it as its regex grammar), control-token spellings in the conversation
/// are broken up (the upstream tokenizes the prompt with its special tokens), and an answer out of
/// format throws <see cref="GuardModelException"/>. Thread-safe; one instance per (backend, format).
/// </summary>
/// <param name="backend">The guard model: an embedded model or an upstream pool serving one.</param>
/// <param name="format">The model's prompt and verdict format.</param>
public sealed class GuardModelClassifier(IGenerationBackend backend, GuardModelFormat format)
{
    /// <summary>Longest answer decoded: the longest verdict of either format is well under this in any real vocabulary (one token at least per 2 characters for the category lists).</summary>
    public const int MaxAnswerTokens = 160;

    private static readonly ConcurrentDictionary<(string Format, bool Response), Grammar> Grammars = new();

    public IGenerationBackend Backend { get; } = backend;

    public GuardModelFormat Format { get; } = format;

    /// <summary>
    /// The guard model's verdict on <paramref name="user"/>'s prompt, or with <paramref name="answer"/>
    /// on that answer to it. <paramref name="tenant"/> salts the engine's prefix cache as for the
    /// tenant's own requests. Cancelling <paramref name="cancellationToken"/> stops the check.
    /// </summary>
    /// <exception cref="GuardModelException">The answer is not in the format, or the model ended before a complete verdict.</exception>
    public async Task<GuardModelVerdict> ClassifyAsync(string user, string? answer = null, CancellationToken cancellationToken = default, string? tenant = null)
    {
        ArgumentNullException.ThrowIfNull(user);
        var response = answer is not null;
        var prompt = Format.Render(user, answer);
        var pattern = Format.Pattern(response);
        var grammar = Grammars.GetOrAdd((Format.Name, response), _ => GrammarCompiler.Regex(pattern));
        var request = new GenerationRequest
        {
            Model = Backend.Model.Id,
            Sampling = new SamplingParams { Temperature = 0f, MaxTokens = MaxAnswerTokens },
            Constraint = new OutputConstraint("guard_model", grammar) { Pattern = pattern },
            Tenant = tenant,
        };
        PreparedPrompt prepared;
        if (Backend is EmbeddedBackend embedded)
        {
            var tokens = Tokenize(embedded.Tokenizer, prompt);
            request = request with { Prompt = PromptInput.FromTokens(tokens) };
            prepared = PreparedPrompt.Exact(tokens);
        }
        else
        {
            request = request with { Prompt = PromptInput.FromText(string.Concat(prompt.Pieces.Select(p => p.IsContent ? BreakControlTokens(p.Text) : p.Text))) };
            prepared = Backend.Prepare(request);
        }
        var said = new StringBuilder();
        var finish = (FinishReason?)null;
        await foreach (var delta in Backend.GenerateAsync(new BackendCall(request, prepared), cancellationToken).ConfigureAwait(false))
        {
            said.Append(delta.Text);
            if (delta.Finish is { } f) finish = f;
        }
        if (finish == FinishReason.Length)
            throw new GuardModelException($"the guard model's answer did not end within {MaxAnswerTokens} tokens");
        return Format.Parse(said.ToString(), response);
    }

    /// <summary>The prompt's token ids: the format's text with its control tokens, the conversation's as plain text.</summary>
    public static int[] Tokenize(ITokenizer tokenizer, GuardPrompt prompt)
    {
        var tokens = new List<int>();
        foreach (var (text, isContent) in prompt.Pieces)
            tokenizer.Encode(text, tokens, addSpecial: false, parseSpecial: !isContent);
        return [.. tokens];
    }

    /// <summary>
    /// <c>&lt;|</c> and <c>|&gt;</c> with a zero-width space between their characters: the spellings of
    /// Llama 3's and ChatML's control tokens no longer match them, and a reader sees the same text.
    /// </summary>
    public static string BreakControlTokens(string text) =>
        text.Contains("<|", StringComparison.Ordinal) || text.Contains("|>", StringComparison.Ordinal)
            ? text.Replace("<|", "<\u200B|", StringComparison.Ordinal).Replace("|>", "|\u200B>", StringComparison.Ordinal)
            : text;
}
