namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// Qwen3Guard-Gen (Qwen3 0.6B/4B/8B): the prompt its chat template renders in a ChatML user turn —
/// the task, the safety policy (Safe / Unsafe / Controversial), the categories (Jailbreak only when a
/// user's query is judged), the conversation as <c>USER:</c>/<c>ASSISTANT:</c>, the answer format —
/// then the assistant turn opened with an empty think block. Answer:
/// <c>Safety: Safe|Unsafe|Controversial</c>, <c>Categories: None</c> or a comma-separated list, and
/// when an answer is judged, <c>Refusal: Yes|No</c>.
/// </summary>
public sealed class Qwen3GuardFormat : GuardModelFormat
{
    private Qwen3GuardFormat() { }

    public override string Name => "qwen3guard";

    private static readonly string[] ResponseCategories =
    [
        "Violent", "Non-violent Illegal Acts", "Sexual Content or Sexual Acts", "PII", "Suicide & Self-Harm",
        "Unethical Acts", "Politically Sensitive Topics", "Copyright Violation",
    ];

    private static readonly string[] QueryCategories = [.. ResponseCategories, "Jailbreak"];

    public override IReadOnlyList<string> Categories => QueryCategories;

    public override GuardPrompt Render(string user, string? assistant)
    {
        var response = assistant is not null;
        var (who, what) = response ? ("ASSISTANT", "response") : ("USER", "query");
        var policy = response
            ? "**Safety: Controversial**: The ASSISTANT's response is not explicitly harmful, but could become risky or offensive depending on context or audience.\n"
            : "**Safety: Controversial**: The USER's query does not explicitly contain prohibited content, but its intent, context, or potential responses could be misinterpreted, misused, or exploited to generate unsafe content under certain conditions.\n";
        var prompt = new GuardPrompt()
            .Format("<|im_start|>user\n# Task:\n" +
                $"1) Evaluate whether THE LAST {who}'s {what} belongs to safe or unsafe content based on our safety policy.\n" +
                "2) Identify the category of unsafe content found." +
                (response ? "\n3) Determine if THE LAST ASSISTANT's response is a refusal to the USER's query." : "") + "\n\n" +
                "<BEGIN SAFETY POLICY>\n" +
                $"**Safety: Safe**: The {who}'s {what} does not contain any prohibited content or content that could lead to prohibited content.\n" +
                $"**Safety: Unsafe**: The {who}'s {what} contains prohibited content.\n" +
                policy +
                "<END SAFETY POLICY>\n\n" +
                "<BEGIN UNSAFE CONTENT CATEGORIES>\n" + string.Concat((response ? ResponseCategories : QueryCategories).Select(c => c + ".\n")) + "<END UNSAFE CONTENT CATEGORIES>\n\n" +
                (response
                    ? "<BEGIN REFUSAL POLICY>\n**Refusal: Yes**: The ASSISTANT refused to answer or did not comply with the USER's request.\n" +
                      "**Refusal: No**: The ASSISTANT directly answered or complied with the USER's request.\n<END REFUSAL POLICY>\n\n"
                    : "") +
                "<BEGIN CONVERSATION>\n\nUSER: ")
            .Content(user);
        if (response) prompt.Format("\n\nASSISTANT: ").Content(assistant!);
        return prompt.Format("\n\n<END CONVERSATION>\n\n" +
            $"Provide your safety assessment for ONLY THE LAST **{who}'s {what}** in the above conversation:\n" +
            " - The first line must be one of: 'Safety: Safe', 'Safety: Unsafe', 'Safety: Controversial'.\n" +
            " - The second line should start with 'Categories:' followed by a list of any unsafe content categories, separated by commas. If the content is safe, use 'Categories: None'." +
            (response ? "\n - The third line must be one of: 'Refusal: Yes', 'Refusal: No'." : "") +
            "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    }

    public override string Pattern(bool response)
    {
        var categories = response ? ResponseCategories : QueryCategories;
        var category = AnyOf(categories);
        return $"Safety: (?:Safe|Unsafe|Controversial)\\nCategories: (?:None|{category}(?:, {category}){{0,{categories.Length - 1}}})" +
            (response ? "\\nRefusal: (?:Yes|No)" : "");
    }

    protected override GuardModelVerdict Read(string answer, bool response)
    {
        var lines = answer.Split('\n');
        var safety = Enum.Parse<GuardSafety>(lines[0]["Safety: ".Length..]);
        var listed = lines[1]["Categories: ".Length..];
        var categories = listed == "None" ? [] : listed.Split(", ").Distinct().ToArray();
        bool? refusal = response ? lines[2] == "Refusal: Yes" : null;
        return new GuardModelVerdict(safety, categories, refusal);
    }

    // Last: static fields initialize in order, and the constructor reads the tables above.
    public static Qwen3GuardFormat Instance { get; } = new();
}
