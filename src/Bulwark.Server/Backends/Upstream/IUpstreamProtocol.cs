using Bulwark.Server.Requests;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// How a pool speaks to its engines: what it refuses up front, the request it sends, and how it reads
/// a whole response or a stream's events back as choice deltas and usage. <c>openai</c>
/// (<see cref="OpenAiWire"/>) and <c>tgi</c> (<see cref="TgiWire"/>).
/// </summary>
internal interface IUpstreamProtocol
{
    /// <summary>Where health checks go, relative to the endpoint's base URL.</summary>
    string HealthPath { get; }

    /// <summary>Whether the health check's answer lists the models the endpoint serves.</summary>
    bool Discovers { get; }

    /// <summary>Throws the 400 for what this protocol cannot carry (the field named).</summary>
    void Check(GenerationRequest request, string served);

    string PathOf(GenerationRequest request, bool stream);

    byte[] Body(GenerationRequest request, string upstreamModel, bool stream);

    /// <summary>One event of a stream; the usage when it carries one (<c>PromptTokens</c> -1: the protocol does not report it).</summary>
    /// <exception cref="InvalidDataException">The event is outside the protocol (an error object, a choice never asked for).</exception>
    GenerationUsage? Chunk(string data, GenerationRequest request, List<ChoiceDelta> deltas);

    /// <summary>A whole response, as one delta per choice, and its usage.</summary>
    GenerationUsage? Whole(ReadOnlySpan<byte> body, GenerationRequest request, List<ChoiceDelta> deltas);

    /// <summary>The protocol named in <see cref="UpstreamPoolOptions.Protocol"/>.</summary>
    static IUpstreamProtocol For(string name) => name == "tgi" ? TgiWire.Instance : OpenAiWire.Instance;
}
