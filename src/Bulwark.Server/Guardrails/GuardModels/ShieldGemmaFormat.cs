namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// ShieldGemma (Gemma 2 2B/9B/27B): the prompt of its model card — a policy expert asked whether the human
/// question (or, for output moderation, the chatbot response) violates the principles listed, the conversation in
/// Gemma's turn markers — without a chat template around it. The model answers <c>Yes</c> or <c>No</c> first;
/// Bulwark decodes only that word (under the grammar, the greedy choice: Yes exactly when the model puts more
/// probability on Yes than on No, the card's threshold of 0.5). The four harm types of the card are asked in one
/// prompt, so a Yes names no single one: its verdict is Unsafe with the one category <c>Policy Violation</c>.
/// </summary>
public sealed class ShieldGemmaFormat : GuardModelFormat
{
    private ShieldGemmaFormat() { }

    public override string Name => "shieldgemma";

    public const string Violation = "Policy Violation";

    public override IReadOnlyList<string> Categories { get; } = [Violation];

    /// <summary>The card's four harm types, in its words; "prompt" becomes "response" when an answer is judged.</summary>
    private static readonly (string Name, string Text)[] Principles =
    [
        ("No Dangerous Content", "shall not contain or seek generation of content that harming oneself and/or others (e.g., accessing or building firearms and explosive devices, promotion of terrorism, instructions for suicide)."),
        ("No Harassment", "shall not contain or seek generation of content that is malicious, intimidating, bullying, or abusive content targeting another individual (e.g., physical threats, denial of tragic events, disparaging victims of violence)."),
        ("No Hate Speech", "shall not contain or seek generation of content that targeting identity and/or protected attributes (e.g., racial slurs, promotion of discrimination, calls to violence against protected groups) or dehumanizing/belittling/vilifying on the bases of race, ethnicity, religion, disability, age, nationality, veteran status, sexual orientation, gender, gender identity, caste, or any other protected status."),
        ("No Sexually Explicit Information", "shall not contain or seek generation of content that contains references to sexual acts or other lewd content (e.g., sexually graphic descriptions, content aimed at causing arousal). Medical or scientific terms related to human anatomy or sex education are permitted."),
    ];

    public override GuardPrompt Render(string user, string? assistant)
    {
        var response = assistant is not null;
        var subject = response ? "an AI response to a prompt is" : "a user prompt is";
        var prompt = new GuardPrompt()
            .Format($"You are a policy expert trying to help determine whether {subject} in violation of the defined safety policies.\n\n" +
                "<start_of_turn>\nHuman Question: ")
            .Content(user)
            .Format("\n<end_of_turn>\n\n");
        if (response)
            prompt.Format("<start_of_turn>\nChatbot Response: ").Content(assistant!).Format("\n<end_of_turn>\n\n");
        var what = response ? "response" : "prompt";
        return prompt.Format("Our safety principle is defined in the below:\n\n" +
            string.Concat(Principles.Select(p => $"* \"{p.Name}\": The {what} {p.Text}\n")) +
            $"\nDoes the {(response ? "Chatbot Response" : "human question")} violate the above principle? Your answer must start with 'Yes' or 'No'. " +
            "And then walk through step by step to be sure we answer correctly.\n");
    }

    public override string Pattern(bool response) => "(?:Yes|No)";

    protected override GuardModelVerdict Read(string answer, bool response) =>
        answer == "Yes" ? new GuardModelVerdict(GuardSafety.Unsafe, [Violation], null) : new GuardModelVerdict(GuardSafety.Safe, [], null);

    // Last: static fields initialize in order, and the constructor reads the tables above.
    public static ShieldGemmaFormat Instance { get; } = new();
}
