using Bulwark.Server.Observability;
using System.CommandLine;
using Bulwark.Server.Backends.Upstream;
using Bulwark.Server.Hosting;
using Bulwark.Server.Models;
using Bulwark.Server;
using Microsoft.Extensions.Hosting;

namespace Bulwark.Cli.Commands;

/// <summary>
/// <c>bulwark serve</c>: the OpenAI-compatible server on Kestrel. Flags become configuration keys
/// that override appsettings.json and <c>Bulwark__*</c> environment variables; everything else is
/// <see cref="ServeHost"/>.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "A registered model name (verified before it loads; it wins over a file of the same name, write ./NAME for the file), or a .gguf file or model folder (unverified). Default: the demo model bulwark-demo (random weights)." };
        var host = new Option<string?>("--host") { Description = "Address to listen on (default 127.0.0.1; 0.0.0.0 accepts other machines)." };
        var port = new Option<int?>("--port") { Description = "Port to listen on (default 8000)." };
        var dataDir = CommonOptions.DataDir();
        var kvMemory = new Option<string?>("--kv-cache-memory") { Description = "Memory for the KV cache, e.g. 512MiB or 2GiB (default 512MiB)." };
        var kvDtype = new Option<string?>("--kv-cache-dtype") { Description = "How the KV cache stores keys and values: f32 (default) or f16 (half the memory per token, as llama.cpp does)." };
        var batched = new Option<int?>("--max-batched-tokens") { Description = "Tokens computed per engine step, prefill and decode together (default 512)." };
        var embeddingPooling = new Option<string?>("--embedding-pooling") { Description = "How /v1/embeddings pools: model (default: as the model file declares; a generator refuses), none, mean, cls or last (any decoder, as llama.cpp's --pooling)." };
        var prefillWhileDecoding = new Option<int?>("--max-prefill-while-decoding") { Description = "Prefill tokens (new prompts, recomputation, speculative drafts) a step may carry while streams are decoding, so new prompts do not stall them (default 64)." };
        var draftModel = new Option<string?>("--draft-model") { Description = "A smaller model with the same tokenizer (registered name or path) that drafts tokens for the served model; requests ask with \"speculative\": {\"method\": \"draft_model\"} (or set Bulwark:Serve:Speculative:Method=draft_model for all). Output is unchanged, only faster when the draft agrees." };
        var seqs = new Option<int?>("--max-seqs") { Description = "Sequences running at once in the engine (default 64)." };
        var concurrent = new Option<int?>("--max-concurrent-requests") { Description = "Requests generating at once; more wait in the admission queue (default 16)." };
        var requireSigned = new Option<bool>("--require-signature") { Description = "Serve only a registered model whose manifest is signed by a trusted key (a plain path or the demo model is refused)." };
        var quantize = QuantizeOption.Create();
        var upstream = new Option<string[]>("--upstream")
        {
            Description = "An OpenAI-compatible base URL ending in /v1 (vLLM, SGLang, TGI, llama.cpp's server, Ollama, another Bulwark) to serve every model it lists; repeat for more. Without --model, no model runs in this process.",
            AllowMultipleArgumentsPerToken = false,
        };
        var upstreamKey = new Option<string?>("--upstream-api-key-env") { Description = "Environment variable holding the key the --upstream engines expect (never the key itself on the command line)." };
        var logFormat = new Option<string?>("--log-format") { Description = "Console log format: text (default) or json (one object a line, with the trace and span ids of the request)." };
        logFormat.AcceptOnlyFromAmong("text", "json");
        var command = new Command("serve", "Serve a model through the OpenAI-compatible API (with keys, quotas, audit and metrics).")
        {
            model, host, port, dataDir, kvMemory, kvDtype, embeddingPooling, draftModel, batched, prefillWhileDecoding, seqs, concurrent, requireSigned, quantize, upstream, upstreamKey, logFormat,
        };
        command.SetAction(async (result, ct) =>
        {
            var flags = new Dictionary<string, string?>();
            void Set(string key, object? value)
            {
                if (value is not null) flags[key] = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture);
            }
            Set(ServeOptions.Section + ":Model", result.GetValue(model));
            Set(ServerOptions.Section + ":Host", result.GetValue(host));
            Set(ServerOptions.Section + ":Port", result.GetValue(port));
            Set(ServerSettings.DataDirKey, result.GetValue(dataDir));
            Set(ServeOptions.Section + ":KvCacheMemory", result.GetValue(kvMemory));
            Set(ServeOptions.Section + ":KvCacheDtype", result.GetValue(kvDtype));
            Set(ServeOptions.Section + ":EmbeddingPooling", result.GetValue(embeddingPooling));
            Set(SpeculativeOptions.Section + ":DraftModel", result.GetValue(draftModel));
            Set(ServeOptions.Section + ":MaxBatchedTokens", result.GetValue(batched));
            Set(ServeOptions.Section + ":MaxSequences", result.GetValue(seqs));
            Set(ServeOptions.Section + ":MaxPrefillTokensWhileDecoding", result.GetValue(prefillWhileDecoding));
            Set(Server.Admission.AdmissionOptions.Section + ":MaxConcurrentRequests", result.GetValue(concurrent));
            if (result.GetValue(requireSigned)) Set(ServeOptions.Section + ":RequireSignature", true);
            Set(ServeOptions.Section + ":Quantize", result.GetValue(quantize));
            Set(ServerSettings.LogFormatKey, result.GetValue(logFormat));
            // --upstream URL ... is the pool "default" in Bulwark:Upstreams, as appsettings.json would say it.
            var urls = result.GetValue(upstream) ?? [];
            for (var i = 0; i < urls.Length; i++) Set($"{UpstreamPoolOptions.Section}:default:Endpoints:{i}:Url", urls[i]);
            if (result.GetValue(upstreamKey) is { } keyEnv)
            {
                if (urls.Length == 0)
                {
                    Console.Error.WriteLine("--upstream-api-key-env needs --upstream.");
                    return 2;
                }
                Set($"{UpstreamPoolOptions.Section}:default:ApiKeyEnv", keyEnv);
            }
            try
            {
                var builder = BulwarkServer.CreateBuilder([], flags);
                // glibc takes its arena cap from the environment at process start: serve starts again with it (same pid).
                if (int.TryParse(builder.Configuration[MemoryOptions.Section + ":MallocArenaMax"] ?? new MemoryOptions().MallocArenaMax.ToString(System.Globalization.CultureInfo.InvariantCulture), out var arenas))
                    NativeHeap.RestartWithArenaLimit(arenas);
                await using var serve = await ServeHost.StartAsync(builder, Console.Out, ct: ct);
                await serve.App.WaitForShutdownAsync(ct);
                return 0;
            }
            catch (ServerConfigurationException e)
            {
                Console.Error.WriteLine(e.Message);
                return 2;
            }
            catch (DataDirectoryException e)
            {
                Console.Error.WriteLine(e.Message);
                return 1;
            }
        });
        return command;
    }
}
