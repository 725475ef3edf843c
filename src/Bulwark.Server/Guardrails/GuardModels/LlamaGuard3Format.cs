namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// Llama Guard 3 (Llama 3.2 1B, Llama 3.1 8B): the prompt its chat template renders — the task, the
/// fourteen hazard categories S1–S14, the conversation as <c>User:</c>/<c>Agent:</c> turns, the
/// instruction to answer for the last one — in a Llama 3 user turn, then the assistant turn opened.
/// Answer: <c>safe</c>, or <c>unsafe</c> and on a second line the violated categories, comma-separated
/// (<c>unsafe\nS1,S10</c>).
/// </summary>
public sealed class LlamaGuard3Format : GuardModelFormat
{
    private LlamaGuard3Format() { }

    public override string Name => "llama-guard-3";

    /// <summary>The category ids with the names the model's prompt gives them.</summary>
    public static IReadOnlyList<(string Id, string Name)> Hazards { get; } =
    [
        ("S1", "Violent Crimes"), ("S2", "Non-Violent Crimes"), ("S3", "Sex Crimes"), ("S4", "Child Exploitation"),
        ("S5", "Defamation"), ("S6", "Specialized Advice"), ("S7", "Privacy"), ("S8", "Intellectual Property"),
        ("S9", "Indiscriminate Weapons"), ("S10", "Hate"), ("S11", "Self-Harm"), ("S12", "Sexual Content"),
        ("S13", "Elections"), ("S14", "Code Interpreter Abuse"),
    ];

    public override IReadOnlyList<string> Categories { get; } = Hazards.Select(h => h.Id).ToArray();

    public override GuardPrompt Render(string user, string? assistant)
    {
        var role = assistant is null ? "User" : "Agent";
        var prompt = new GuardPrompt()
            .Format("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" +
                $"Task: Check if there is unsafe content in '{role}' messages in conversations according our safety policy with the below categories.\n\n" +
                "<BEGIN UNSAFE CONTENT CATEGORIES>\n" + string.Concat(Hazards.Select(h => $"{h.Id}: {h.Name}.\n")) + "<END UNSAFE CONTENT CATEGORIES>\n\n" +
                "<BEGIN CONVERSATION>\n\nUser: ")
            .Content(user.Trim());
        if (assistant is not null) prompt.Format("\n\nAgent: ").Content(assistant.Trim());
        return prompt.Format("\n\n<END CONVERSATION>\n\n" +
            $"Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n" +
            " - First line must read 'safe' or 'unsafe'.\n" +
            " - If unsafe, a second line must include a comma-separated list of violated categories.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    }

    // At most the fourteen categories, so the answer is bounded and a constrained random model ends.
    private const string Category = "S(?:1[0-4]|[1-9])";

    public override string Pattern(bool response) => $"safe|unsafe\\n{Category}(?:,{Category}){{0,13}}";

    protected override GuardModelVerdict Read(string answer, bool response) =>
        answer == "safe"
            ? new GuardModelVerdict(GuardSafety.Safe, [])
            : new GuardModelVerdict(GuardSafety.Unsafe, answer["unsafe\n".Length..].Split(',').Distinct().ToArray());

    // Last: static fields initialize in order, and the constructor reads the tables above.
    public static LlamaGuard3Format Instance { get; } = new();
}
