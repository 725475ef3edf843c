using System.Diagnostics;
using System.Text;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// <c>/v1/embeddings</c> relayed to a pool that speaks the OpenAI protocol, with the same attempts as a generation: each
/// through its endpoint's breaker, bulkhead and first-byte timeout, retried on another endpoint for what is transient
/// (an embedding is idempotent, and nothing reaches the client before the whole response is read and checked). There
/// is no fallback to another model: its vectors would live in another space than the ones a client already stored.
/// </summary>
public sealed partial class UpstreamBackend
{
    /// <summary>
    /// Over the OpenAI protocol every served model may embed, and the upstream judges the width asked for (<c>dimensions</c>
    /// is relayed, the vectors' width checked against it). TGI's protocol has no embeddings route (TEI's <c>/embed</c> is
    /// another server's), so its pools refuse.
    /// </summary>
    public EmbeddingSupport Embeddings => _pool.Protocol is OpenAiWire
        ? new EmbeddingSupport(int.MaxValue, 1)
        : EmbeddingSupport.None($"The model '{_served}' is served by upstream pool '{_pool.Name}' over TGI's protocol, which has no embeddings route; " +
            "serve embedding models (text-embeddings-inference, vLLM, another Bulwark) from a pool with Protocol 'openai'.");

    /// <summary>
    /// The inputs' tokens: exact with the model's tokenizer when one is configured (then each input is held to the context
    /// the pool reports), else ⌈UTF-8 bytes / 4⌉ per text, as for prompts; token ids count as themselves. The quota
    /// reserves this and settles from the upstream's <c>usage.prompt_tokens</c>.
    /// </summary>
    public PreparedEmbeddings PrepareEmbeddings(EmbeddingsRequest request)
    {
        var inputs = new int[request.Inputs.Count][];
        var exact = true;
        long total = 0;
        var context = Model.ContextLength;
        for (var i = 0; i < inputs.Length; i++)
        {
            var input = request.Inputs[i];
            var path = request.Inputs.Count == 1 && input.Text is not null ? "input" : $"input[{i}]";
            int count;
            if (input.TokenIds is { } ids) inputs[i] = ids;
            else if (Encoder is { } encoder) inputs[i] = encoder.Encode(input.Text!, addSpecialTokens: true);
            if (inputs[i] is { } known)
            {
                count = known.Length;
                if (context > 0 && count > context) throw EmbeddingsRequest.ContextExceeded(path, context, count);
            }
            else
            {
                inputs[i] = [];
                count = (Encoding.UTF8.GetByteCount(input.Text!) + 3) / 4;
                exact = false;
            }
            total += count;
        }
        return new PreparedEmbeddings(inputs, (int)Math.Min(int.MaxValue, total)) { IsExact = exact };
    }

    public async Task<EmbeddingResult> EmbedAsync(EmbeddingsRequest request, PreparedEmbeddings prepared, CancellationToken cancellationToken)
    {
        using var total = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        total.CancelAfter(_pool.Options.TotalTimeout);
        var body = OpenAiEmbeddingsWire.Body(request, _pool.UpstreamName(_served));
        try
        {
            return await _retry.ExecuteAsync(static (s, ct) => s.Backend.EmbedAttemptAsync(s.Request, s.Body, s.Tried, ct),
                (Backend: this, Request: request, Body: body, Tried: new HashSet<UpstreamEndpoint>()), total.Token);
        }
        catch (NoEndpointException)
        {
            throw Unavailable($"No upstream endpoint of pool '{_pool.Name}' can take a request for '{_served}' now (all are down, failing or at capacity). Retry later.");
        }
        catch (UpstreamAttemptException e)
        {
            throw Failed(e);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ApiException(StatusCodes.Status504GatewayTimeout, $"The upstream engine did not finish within {_pool.Options.TotalTimeout}.",
                "server_error", null, "upstream_timeout");
        }
    }

    /// <summary>One attempt: an endpoint, the whole response within the size limit, its vectors checked (a response that fails the check is the endpoint's failure).</summary>
    private async ValueTask<EmbeddingResult> EmbedAttemptAsync(EmbeddingsRequest request, byte[] body, HashSet<UpstreamEndpoint> tried, CancellationToken ct)
    {
        var endpoint = _pool.Pick(_served, tried) ?? throw new NoEndpointException();
        tried.Add(endpoint);
        endpoint.Enter();
        var started = Stopwatch.GetTimestamp();
        var span = AttemptSpan.Start(Activity.Current, endpoint, tried.Count);
        try
        {
            byte[] bytes;
            int length;
            using (var response = await SendAsync(endpoint, OpenAiEmbeddingsWire.Path, body, span, started, ct))
                (bytes, length) = await ReadWholeAsync(response, ct);
            float[][] vectors;
            int? tokens;
            try
            {
                (vectors, tokens) = OpenAiEmbeddingsWire.Read(bytes.AsSpan(0, length), request.Inputs.Count, request.Dimensions);
            }
            finally
            {
                WholeBody.Return(bytes, length);
            }
            AttemptSucceeded(endpoint, span, started);
            return new EmbeddingResult(vectors) { PromptTokens = tokens, Endpoint = endpoint.Name };
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            throw AttemptFailed(endpoint, span, started, e);
        }
        catch
        {
            AttemptCancelled(endpoint, span, started);
            throw;
        }
    }
}
