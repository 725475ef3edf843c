using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Guardrails.Input;
using Bulwark.Server.Guardrails;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Tests.Guardrails.GuardModels;

public sealed class GuardModelFormatTests
{
    [Fact]
    public void LlamaGuard3PromptIsItsChatTemplatesTextForAUserMessage()
    {
        const string expected = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" +
            "Task: Check if there is unsafe content in 'User' messages in conversations according our safety policy with the below categories.\n\n" +
            "<BEGIN UNSAFE CONTENT CATEGORIES>\nS1: Violent Crimes.\nS2: Non-Violent Crimes.\nS3: Sex Crimes.\nS4: Child Exploitation.\nS5: Defamation.\n" +
            "S6: Specialized Advice.\nS7: Privacy.\nS8: Intellectual Property.\nS9: Indiscriminate Weapons.\nS10: Hate.\nS11: Self-Harm.\n" +
            "S12: Sexual Content.\nS13: Elections.\nS14: Code Interpreter Abuse.\n<END UNSAFE CONTENT CATEGORIES>\n\n" +
            "<BEGIN CONVERSATION>\n\nUser: How do I pick a lock?\n\n<END CONVERSATION>\n\n" +
            "Provide your safety assessment for ONLY THE LAST User message in the above conversation:\n" +
            " - First line must read 'safe' or 'unsafe'.\n" +
            " - If unsafe, a second line must include a comma-separated list of violated categories.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        var prompt = LlamaGuard3Format.Instance.Render("  How do I pick a lock?\n", null);
        Assert.Equal(expected, prompt.Text);
        Assert.Equal(["How do I pick a lock?"], prompt.Pieces.Where(p => p.IsContent).Select(p => p.Text));
    }

    [Fact]
    public void LlamaGuard3PromptJudgesTheAgentWhenAnAnswerIsGiven()
    {
        var text = LlamaGuard3Format.Instance.Render("How do I pick a lock?", "Use a tension wrench.").Text;
        Assert.Contains("unsafe content in 'Agent' messages", text);
        Assert.Contains("<BEGIN CONVERSATION>\n\nUser: How do I pick a lock?\n\nAgent: Use a tension wrench.\n\n<END CONVERSATION>\n\n", text);
        Assert.Contains("ONLY THE LAST Agent message", text);
    }

    [Fact]
    public void Qwen3GuardPromptIsItsChatTemplatesTextForAQuery()
    {
        const string expected = "<|im_start|>user\n# Task:\n" +
            "1) Evaluate whether THE LAST USER's query belongs to safe or unsafe content based on our safety policy.\n" +
            "2) Identify the category of unsafe content found.\n\n" +
            "<BEGIN SAFETY POLICY>\n" +
            "**Safety: Safe**: The USER's query does not contain any prohibited content or content that could lead to prohibited content.\n" +
            "**Safety: Unsafe**: The USER's query contains prohibited content.\n" +
            "**Safety: Controversial**: The USER's query does not explicitly contain prohibited content, but its intent, context, or potential responses could be misinterpreted, misused, or exploited to generate unsafe content under certain conditions.\n" +
            "<END SAFETY POLICY>\n\n" +
            "<BEGIN UNSAFE CONTENT CATEGORIES>\nViolent.\nNon-violent Illegal Acts.\nSexual Content or Sexual Acts.\nPII.\nSuicide & Self-Harm.\n" +
            "Unethical Acts.\nPolitically Sensitive Topics.\nCopyright Violation.\nJailbreak.\n<END UNSAFE CONTENT CATEGORIES>\n\n" +
            "<BEGIN CONVERSATION>\n\nUSER: How do I pick a lock?\n\n<END CONVERSATION>\n\n" +
            "Provide your safety assessment for ONLY THE LAST **USER's query** in the above conversation:\n" +
            " - The first line must be one of: 'Safety: Safe', 'Safety: Unsafe', 'Safety: Controversial'.\n" +
            " - The second line should start with 'Categories:' followed by a list of any unsafe content categories, separated by commas. If the content is safe, use 'Categories: None'." +
            "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
        Assert.Equal(expected, Qwen3GuardFormat.Instance.Render("How do I pick a lock?", null).Text);
    }

    [Fact]
    public void Qwen3GuardPromptForAResponseAsksForTheRefusalAndDropsJailbreak()
    {
        var text = Qwen3GuardFormat.Instance.Render("How do I pick a lock?", "I can't help with that.").Text;
        Assert.StartsWith("<|im_start|>user\n# Task:\n1) Evaluate whether THE LAST ASSISTANT's response belongs to safe or unsafe content based on our safety policy.\n" +
            "2) Identify the category of unsafe content found.\n3) Determine if THE LAST ASSISTANT's response is a refusal to the USER's query.\n\n", text);
        Assert.Contains("Copyright Violation.\n<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN REFUSAL POLICY>\n", text);
        Assert.DoesNotContain("Jailbreak", text);
        Assert.Contains("<BEGIN CONVERSATION>\n\nUSER: How do I pick a lock?\n\nASSISTANT: I can't help with that.\n\n<END CONVERSATION>", text);
        Assert.EndsWith(" - The third line must be one of: 'Refusal: Yes', 'Refusal: No'.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", text);
    }

    [Fact]
    public void ShieldGemmaPromptIsItsModelCardsTextWithTheFourPrinciples()
    {
        var prompt = ShieldGemmaFormat.Instance.Render("How do I <end_of_turn> pick a lock?", null);
        Assert.Equal(
            "You are a policy expert trying to help determine whether a user prompt is in violation of the defined safety policies.\n\n" +
            "<start_of_turn>\nHuman Question: How do I <end_of_turn> pick a lock?\n<end_of_turn>\n\n" +
            "Our safety principle is defined in the below:\n\n" +
            "* \"No Dangerous Content\": The prompt shall not contain or seek generation of content that harming oneself and/or others (e.g., accessing or building firearms and explosive devices, promotion of terrorism, instructions for suicide).\n",
            prompt.Text[..prompt.Text.IndexOf("* \"No Harassment\"", StringComparison.Ordinal)]);
        Assert.EndsWith("\nDoes the human question violate the above principle? Your answer must start with 'Yes' or 'No'. And then walk through step by step to be sure we answer correctly.\n", prompt.Text);
        Assert.Equal(4, prompt.Text.Split("\n* \"No ").Length - 1);
        // The user's text is content (tokenized as plain text), everything else the format's own.
        Assert.Equal([("How do I <end_of_turn> pick a lock?", true)], prompt.Pieces.Where(p => p.IsContent));
    }

    [Fact]
    public void ShieldGemmaPromptForAResponseJudgesTheChatbotResponse()
    {
        var prompt = ShieldGemmaFormat.Instance.Render("Hi", "Hello there");
        Assert.Contains("whether an AI response to a prompt is in violation", prompt.Text);
        Assert.Contains("<start_of_turn>\nHuman Question: Hi\n<end_of_turn>\n\n<start_of_turn>\nChatbot Response: Hello there\n<end_of_turn>\n\n", prompt.Text);
        Assert.Contains("* \"No Harassment\": The response shall not", prompt.Text);
        Assert.Contains("Does the Chatbot Response violate the above principle?", prompt.Text);
        Assert.Equal(["Hi", "Hello there"], prompt.Pieces.Where(p => p.IsContent).Select(p => p.Text));
    }

    [Theory]
    [InlineData("Yes", false, "Unsafe", "Policy Violation")]
    [InlineData("No", false, "Safe", "")]
    [InlineData("Yes\n", true, "Unsafe", "Policy Violation")]
    [InlineData("No", true, "Safe", "")]
    public void ShieldGemmaVerdictsParse(string answer, bool response, string safety, string categories)
    {
        var verdict = ShieldGemmaFormat.Instance.Parse(answer, response);
        Assert.Equal(Enum.Parse<GuardSafety>(safety), verdict.Safety);
        Assert.Equal(categories, string.Join("|", verdict.Categories));
        Assert.Null(verdict.Refusal);
    }

    [Theory]
    [InlineData("safe", "Safe", "")]
    [InlineData("safe\n", "Safe", "")]
    [InlineData("unsafe\nS1", "Unsafe", "S1")]
    [InlineData("unsafe\nS10,S2,S14", "Unsafe", "S10,S2,S14")]
    public void LlamaGuard3VerdictsParse(string answer, string safety, string categories)
    {
        var v = LlamaGuard3Format.Instance.Parse(answer, response: false);
        Assert.Equal(Enum.Parse<GuardSafety>(safety), v.Safety);
        Assert.Equal(categories, string.Join(",", v.Categories));
        Assert.Null(v.Refusal);
    }

    [Theory]
    [InlineData("Safety: Safe\nCategories: None", false, "Safe", "", null)]
    [InlineData("Safety: Unsafe\nCategories: Violent, Jailbreak", false, "Unsafe", "Violent|Jailbreak", null)]
    [InlineData("Safety: Controversial\nCategories: Suicide & Self-Harm\n", false, "Controversial", "Suicide & Self-Harm", null)]
    [InlineData("Safety: Unsafe\nCategories: Non-violent Illegal Acts\nRefusal: No", true, "Unsafe", "Non-violent Illegal Acts", false)]
    [InlineData("Safety: Safe\nCategories: None\nRefusal: Yes", true, "Safe", "", true)]
    public void Qwen3GuardVerdictsParse(string answer, bool response, string safety, string categories, bool? refusal)
    {
        var v = Qwen3GuardFormat.Instance.Parse(answer, response);
        Assert.Equal(Enum.Parse<GuardSafety>(safety), v.Safety);
        Assert.Equal(categories, string.Join("|", v.Categories));
        Assert.Equal(refusal, v.Refusal);
    }

    [Theory]
    [InlineData("llama-guard-3", false, "Safe")]
    [InlineData("llama-guard-3", false, "unsafe")]
    [InlineData("llama-guard-3", false, "unsafe\nS15")]
    [InlineData("llama-guard-3", false, "unsafe\nS1, S2")]
    [InlineData("llama-guard-3", false, " safe")]
    [InlineData("llama-guard-3", false, "safe\nS1")]
    [InlineData("llama-guard-3", false, "")]
    [InlineData("qwen3guard", false, "Safety: safe\nCategories: None")]
    [InlineData("qwen3guard", false, "Safety: Safe")]
    [InlineData("qwen3guard", false, "Safety: Unsafe\nCategories: Weapons")]
    [InlineData("qwen3guard", false, "Safety: Safe\nCategories: None\nRefusal: No")]
    [InlineData("qwen3guard", true, "Safety: Safe\nCategories: None")]
    [InlineData("qwen3guard", true, "Safety: Unsafe\nCategories: Jailbreak\nRefusal: No")]
    [InlineData("shieldgemma", false, "yes")]
    [InlineData("shieldgemma", false, "Yes, because")]
    [InlineData("shieldgemma", true, " No")]
    [InlineData("shieldgemma", false, "")]
    public void AnswersOutOfFormatAreRefused(string format, bool response, string answer)
    {
        var e = Assert.Throws<GuardModelException>(() => GuardModelFormat.ByName[format].Parse(answer, response));
        Assert.Contains($"not in the {format} format", e.Message);
        if (answer.Length > 0) Assert.DoesNotContain(answer.Trim(), e.Message); // the message never repeats the model's words
    }

    [Fact]
    public void CategoriesMapToTheTenantsDecisionsAndTheMostSevereWins()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Bulwark:Guardrails:GuardModel:Model"] = "guard",
            ["Bulwark:Guardrails:GuardModel:Format"] = "qwen3guard",
            ["Bulwark:Guardrails:GuardModel:Categories:Jailbreak"] = "block",
            ["Bulwark:Guardrails:GuardModel:Categories:PII"] = "allow",
            ["Bulwark:Guardrails:GuardModel:Unsafe"] = "flag",
            ["Bulwark:Guardrails:GuardModel:Tenants:lenient:Categories:Jailbreak"] = "flag",
            ["Bulwark:Guardrails:GuardModel:Tenants:strict:Controversial"] = "block",
        }).Build();
        var options = GuardModelOptions.Read(configuration);
        GuardModelVerdict V(GuardSafety s, params string[] c) => new(s, c);
        var main = options.PolicyFor("other");
        Assert.Equal(GuardDecision.Allow, main.Decide(V(GuardSafety.Safe)));
        Assert.Equal(GuardDecision.Block, main.Decide(V(GuardSafety.Unsafe, "PII", "Jailbreak")));
        Assert.Equal(GuardDecision.Allow, main.Decide(V(GuardSafety.Unsafe, "PII")));
        Assert.Equal(GuardDecision.Flag, main.Decide(V(GuardSafety.Unsafe, "Violent"))); // not listed: Unsafe
        Assert.Equal(GuardDecision.Flag, main.Decide(V(GuardSafety.Unsafe)));
        Assert.Equal(GuardDecision.Flag, main.Decide(V(GuardSafety.Controversial, "Jailbreak"))); // capped by Controversial
        var lenient = options.PolicyFor("lenient");
        Assert.Equal(GuardDecision.Flag, lenient.Decide(V(GuardSafety.Unsafe, "Jailbreak")));
        Assert.Equal(GuardDecision.Allow, lenient.Decide(V(GuardSafety.Unsafe, "PII"))); // inherited from the default policy
        Assert.Equal(GuardDecision.Block, options.PolicyFor("strict").Decide(V(GuardSafety.Controversial, "Jailbreak")));
        Assert.Equal(GuardDecision.Block, options.PolicyFor("strict").Decide(V(GuardSafety.Controversial, "Violent")));
        Assert.Equal(GuardDecision.Block, options.PolicyFor("strict").Decide(V(GuardSafety.Unsafe, "Jailbreak")));
    }

    [Theory]
    [InlineData("Format", "granite-guardian", "Bulwark:Guardrails:GuardModel:Format must be one of llama-guard-3, qwen3guard, shieldgemma; got 'granite-guardian'")]
    [InlineData("Mode", "sample:0", "Bulwark:Guardrails:GuardModel:Mode must be every, flagged, sample:<rate> with a rate in (0, 1], or off; got 'sample:0'")]
    [InlineData("Mode", "sample:1.5", "Bulwark:Guardrails:GuardModel:Mode must be every, flagged, sample:<rate> with a rate in (0, 1], or off; got 'sample:1.5'")]
    [InlineData("TimeoutMs", "0", "Bulwark:Guardrails:GuardModel:TimeoutMs must be a whole number between 1 and 600000; got '0'")]
    [InlineData("TimeoutMs", "600001", "Bulwark:Guardrails:GuardModel:TimeoutMs must be a whole number between 1 and 600000; got '600001'")]
    [InlineData("MaxPromptChars", "1000001", "Bulwark:Guardrails:GuardModel:MaxPromptChars must be a whole number between 1 and 1000000; got '1000001'")]
    [InlineData("Fallback", "deny", "Bulwark:Guardrails:GuardModel:Fallback must be allow, flag or block; got 'deny'")]
    [InlineData("Categories:S99", "block", "Bulwark:Guardrails:GuardModel:Categories:S99 is not a llama-guard-3 category; the categories are S1, S2, S3, S4, S5, S6, S7, S8, S9, S10, S11, S12, S13, S14")]
    public void BadSettingsAreRefusedNamingTheKeyAndValue(string key, string value, string message)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [$"Bulwark:Guardrails:GuardModel:{key}"] = value }).Build();
        Assert.Equal(message, Assert.Throws<FormatException>(() => GuardModelOptions.Read(configuration)).Message);
    }

    [Fact]
    public void LimitsAreAcceptedAtTheirBounds()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Bulwark:Guardrails:GuardModel:TimeoutMs"] = "600000",
            ["Bulwark:Guardrails:GuardModel:MaxPromptChars"] = "1",
            ["Bulwark:Guardrails:GuardModel:Mode"] = "sample:1",
        }).Build();
        var options = GuardModelOptions.Read(configuration);
        Assert.Equal(TimeSpan.FromMinutes(10), options.Timeout);
        Assert.Equal(1, options.MaxPromptChars);
        Assert.Equal("sample:1", options.Mode.ToString());
        Assert.False(options.Enabled); // no model: no stage
    }
}
