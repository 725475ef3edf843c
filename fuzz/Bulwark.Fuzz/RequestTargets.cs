using System.Text;
using Bulwark.Server.Api;
using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails.Input;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;

namespace Bulwark.Fuzz;

/// <summary>
/// Fuzz targets for what a client's request meets first, with no network: the body as bytes
/// through <see cref="JsonBody.Parse"/> (what every JSON route reads), the route's own parser
/// (stage 4) for a model of known size and for an upstream model of unknown size, then the input
/// guard (stage 5) under the block policy — the calls and the order of the server's spine. An
/// <see cref="ApiException"/> with a 4xx status is the answer wanted for bad input; anything else
/// that escapes is a finding. Also compiled into the server tests, which replay the corpus through it.
/// </summary>
internal static class RequestTargets
{
    public static readonly IReadOnlyList<string> Names = ["chat", "completion", "tgi", "guard"];

    /// <summary>
    /// What the targets run against, built on first use: under AFL the server's assembly is instrumented, and its code
    /// may run only once the fuzzer's loop has set up the coverage map (not while <c>Program</c> checks the target name).
    /// </summary>
    private static class Server
    {
        public static readonly ApiLimits Limits = new();

        /// <summary>A model of known size, and one behind an upstream that does not say (every bound open).</summary>
        public static readonly ModelCard[] Models =
        [
            new("fuzz-model", 4096, 32000, DateTimeOffset.UnixEpoch),
            new("fuzz-upstream", 0, 0, DateTimeOffset.UnixEpoch),
        ];

        public static readonly InputGuard Guard = new(new InputGuardOptions { Policy = GuardPolicy.Block }, new ServerMetrics(() => default, () => (0, 0)));
    }

    /// <summary>Whether <paramref name="e"/> is a clean refusal of a client's request.</summary>
    public static bool IsRefusal(Exception e) => e is ApiException { Status: >= 400 and < 500 };

    /// <summary>Runs <paramref name="bytes"/> as the named route's body (<c>guard</c>: as the text of a prompt and of a chat message).</summary>
    public static void Read(string target, byte[] bytes)
    {
        if (target == "guard")
        {
            // Texts reach the guard as strings that decoded; the lossy decoder makes one of any bytes.
            var text = Encoding.UTF8.GetString(bytes);
            Screen(new GenerationRequest { Model = Server.Models[0].Id, Prompt = PromptInput.FromText(text) });
            Screen(new GenerationRequest { Model = Server.Models[0].Id, Messages = [new ChatMessage("system", text, null), new ChatMessage("user", text, null)] });
            return;
        }
        using var body = JsonBody.Parse(bytes);
        var root = body.RootElement;
        foreach (var model in Server.Models)
        {
            switch (target)
            {
                case "chat":
                    ModelField.Name(root, Server.Limits);
                    Screen(ChatCompletionParser.Parse(root, model, Server.Limits));
                    break;
                case "completion":
                    ModelField.Name(root, Server.Limits);
                    Screen(TextCompletionParser.Parse(root, model, Server.Limits));
                    break;
                case "tgi":
                    Screen(TgiGenerateEndpoint.Parse(root, stream: false, model, Server.Limits).Request);
                    Screen(TgiGenerateEndpoint.Parse(root, stream: true, model, Server.Limits).Request);
                    break;
                default:
                    throw new ArgumentException($"unknown target {target} (targets: {string.Join(", ", Names)})", nameof(target));
            }
        }
    }

    private static void Screen(GenerationRequest request) => Server.Guard.Apply(request, null, new RequestUsage());
}
