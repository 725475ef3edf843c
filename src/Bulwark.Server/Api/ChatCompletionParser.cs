using System.Text.Json;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>Validates a <c>POST /v1/chat/completions</c> body and renders its messages into prompt tokens.</summary>
public static class ChatCompletionParser
{
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>Stage 4 for <c>/v1/chat/completions</c>; the prompt stage renders the messages later.</summary>
    public static GenerationRequest Parse(JsonElement body, ModelCard model, ApiLimits limits)
    {
        var f = new JsonFields(body, "");
        var messages = ReadMessages(f, limits);
        RefuseUnsupported(f);
        var (constraint, format) = ConstraintFields.Read(f, limits, responseFormat: true);
        var tools = ToolFields.Read(f, model, limits, constraint, out var toolConstraint);

        var logprobs = f.Boolean("logprobs") ?? false;
        var top = f.Integer("top_logprobs", 0, limits.MaxTopLogprobs);
        if (top is not null && !logprobs)
            throw ApiException.Invalid("top_logprobs", "top_logprobs requires logprobs to be true.");

        var sampling = SamplingFields.Read(f, model, limits) with
        {
            N = SamplingFields.Choices(f, limits),
            StopStrings = SamplingFields.Stop(f, limits),
            Logprobs = logprobs,
            TopLogprobs = (int)(top ?? 0),
        };
        var (stream, includeUsage) = SamplingFields.Streaming(f);
        var user = f.String("user", limits.MaxIdentifierLength);
        // max_completion_tokens replaced max_tokens; when both are sent the newer one wins.
        var newer = f.Integer("max_completion_tokens", 1, limits.MaxTokens);
        var older = f.Integer("max_tokens", 1, limits.MaxTokens);
        return new GenerationRequest
        {
            Model = model.Id,
            Messages = messages,
            Sampling = sampling,
            Speculative = SpeculativeFields.Read(f),
            RequestedMaxTokens = (int?)(newer ?? older),
            DefaultMaxTokens = limits.MaxTokens,
            MaxTokensParam = newer is not null ? "max_completion_tokens" : "max_tokens",
            Stream = stream,
            IncludeUsage = includeUsage,
            User = user,
            ResponseFormat = format?.ToResponseFormat(),
            Constraint = toolConstraint ?? constraint,
            Tools = tools,
        };
    }

    /// <summary>The messages, checked for role, content type and total size.</summary>
    public static List<ChatMessage> ReadMessages(JsonFields f, ApiLimits limits)
    {
        var array = f.Array("messages", 1, limits.MaxMessages)
            ?? throw ApiException.Invalid("messages", "messages is required.", "missing_required_parameter");
        var messages = new List<ChatMessage>(array.GetArrayLength());
        var characters = 0L;
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            var m = new JsonFields(item, $"messages[{i}]");
            var role = m.RequiredString("role", 32);
            if (!Roles.Contains(role))
                throw ApiException.Invalid(m.PathOf("role"), $"{m.PathOf("role")} must be one of system, developer, user, assistant, tool; got '{role}'.");
            var content = Content(m, limits);
            var calls = ToolCalls(m, role, limits);
            characters += content.Length + (calls?.Sum(c => c.Arguments.Length + c.Name.Length) ?? 0);
            if (characters > limits.MaxPromptCharacters)
                throw ApiException.Invalid("messages", $"The messages must hold at most {limits.MaxPromptCharacters} characters in total; got more than that by message {i}.", "string_above_max_length");
            var callId = m.String("tool_call_id", limits.MaxIdentifierLength);
            if (role == "tool" && callId is null)
                throw ApiException.Invalid(m.PathOf("tool_call_id"), $"{m.PathOf("tool_call_id")} is required in a message of role tool.", "missing_required_parameter");
            messages.Add(new ChatMessage(role, content, m.String("name", 64))
            {
                ToolCalls = calls,
                ToolCallId = role == "tool" ? callId : null,
                NullContent = calls is not null && m.Get("content") is null,
            });
            i++;
        }
        return messages;
    }

    /// <summary>An assistant message's <c>tool_calls</c>: each <c>{id, type: function, function: {name, arguments}}</c>, arguments a string (OpenAI) or an object.</summary>
    private static List<ToolCallMessage>? ToolCalls(JsonFields m, string role, ApiLimits limits)
    {
        if (m.Array("tool_calls", 0, limits.MaxTools) is not { } array || array.GetArrayLength() == 0) return null;
        if (role != "assistant")
            throw ApiException.Invalid(m.PathOf("tool_calls"), $"{m.PathOf("tool_calls")} is allowed only in a message of role assistant; this one is {role}.");
        var calls = new List<ToolCallMessage>(array.GetArrayLength());
        var j = 0;
        foreach (var item in array.EnumerateArray())
        {
            var call = new JsonFields(item, $"{m.PathOf("tool_calls")}[{j++}]");
            var id = call.RequiredString("id", limits.MaxIdentifierLength);
            var type = call.String("type", 32) ?? "function";
            if (type != "function") throw ApiException.Invalid(call.PathOf("type"), $"{call.PathOf("type")} must be 'function'; got '{type}'.");
            var function = call.Object("function") ?? throw ApiException.Invalid(call.PathOf("function"), $"{call.PathOf("function")} is required.", "missing_required_parameter");
            var name = function.RequiredString("name", limits.MaxToolNameLength);
            var arguments = function.Get("arguments") is { ValueKind: JsonValueKind.Object } o ? o.GetRawText() : function.String("arguments", limits.MaxPromptCharacters) ?? "{}";
            calls.Add(new ToolCallMessage(id, name, arguments));
        }
        return calls;
    }

    /// <summary>A string, or OpenAI's array of text parts; other part types (images, audio) are refused.</summary>
    private static string Content(JsonFields m, ApiLimits limits)
    {
        if (m.Get("content") is not { } content) return "";
        if (content.ValueKind == JsonValueKind.String) return m.String("content", limits.MaxPromptCharacters)!;
        var parts = m.Array("content", 0, limits.MaxMessages)!.Value;
        var text = new System.Text.StringBuilder();
        var j = 0;
        foreach (var part in parts.EnumerateArray())
        {
            var p = new JsonFields(part, $"{m.PathOf("content")}[{j++}]");
            var type = p.RequiredString("type", 32);
            if (type != "text") throw ApiException.Unsupported(p.PathOf("type"), $"{p.PathOf("type")} '{type}' is not supported by this model; only 'text' parts are.");
            text.Append(p.RequiredString("text", limits.MaxPromptCharacters));
            if (text.Length > limits.MaxPromptCharacters)
                throw ApiException.Invalid(m.PathOf("content"), $"{m.PathOf("content")} must be at most {limits.MaxPromptCharacters} characters.", "string_above_max_length");
        }
        return text.ToString();
    }

    /// <summary>Refuses what this server cannot do.</summary>
    private static void RefuseUnsupported(JsonFields f)
    {
        if (f.Get("audio") is not null) throw ApiException.Unsupported("audio", "audio output is not supported by this server.");
    }
}
