namespace Bulwark.Server.Requests;

/// <summary>One turn of a conversation, as the chat template sees it.</summary>
public sealed record ChatMessage(string Role, string Content, string? Name = null);
