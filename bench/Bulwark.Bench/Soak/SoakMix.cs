namespace Bulwark.Bench.Soak;

/// <summary>What one soak request is: a chat or text completion, streamed or not, one that leaves mid-stream, or one the server must refuse.</summary>
internal enum SoakRequestKind
{
    Chat,
    ChatStream,
    Completion,
    CompletionStream,
    /// <summary>A streamed request the client cancels after the first few events.</summary>
    Disconnect,
    /// <summary>A well-formed key the server does not know (401).</summary>
    BadKey,
    /// <summary>A prompt longer than the model's context (400).</summary>
    LongPrompt,
}

/// <summary>
/// The shares of a soak's request mix: <see cref="DisconnectShare"/> of requests leave mid-stream,
/// <see cref="RefusedShare"/> are refused (half a bad key, half an over-long prompt), and of the
/// rest, half are chat and half text completions, <see cref="StreamShare"/> of them streamed.
/// </summary>
internal sealed record SoakMix(double DisconnectShare, double RefusedShare, double StreamShare)
{
    public SoakRequestKind Pick(Random random)
    {
        var roll = random.NextDouble();
        if (roll < DisconnectShare) return SoakRequestKind.Disconnect;
        roll -= DisconnectShare;
        if (roll < RefusedShare) return roll < RefusedShare / 2 ? SoakRequestKind.BadKey : SoakRequestKind.LongPrompt;
        var chat = random.Next(2) == 0;
        var stream = random.NextDouble() < StreamShare;
        return (chat, stream) switch
        {
            (true, true) => SoakRequestKind.ChatStream,
            (true, false) => SoakRequestKind.Chat,
            (false, true) => SoakRequestKind.CompletionStream,
            (false, false) => SoakRequestKind.Completion,
        };
    }
}
