namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// The built-in rule set. Wording rules cover English and German (the languages of the
/// development data) and, for the plain "forget/ignore the instructions" and "you are now" shapes,
/// Spanish, Portuguese, French, Italian, Dutch, Polish, Croatian/Serbian and Russian; their patterns run on <see cref="ScanText.Normalized"/>, so they are written
/// in lower case with single spaces. Ids are stable: they appear in metrics, audit records and
/// the model file (one feature per rule).
/// </summary>
public static partial class InjectionRules
{
    public const string InstructionOverride = "instruction-override";
    public const string RoleSwitch = "role-switch";
    public const string RolePlay = "role-play";
    public const string Jailbreak = "jailbreak-persona";
    public const string FakeDelimiter = "fake-delimiter";
    public const string PromptLeak = "prompt-leak";
    public const string ResponseDirective = "response-directive";
    public const string FakeCompletion = "fake-completion";
    public const string EncodedPayload = "encoded-payload";
    public const string UnicodeTags = "unicode-tags";
    public const string InvisibleText = "invisible-text";

    /// <summary>Invisible characters (zero-width and the like) from which text counts as carrying hidden content.</summary>
    public const int InvisibleThreshold = 3;

    /// <summary>Smuggled tag-character ASCII from which it is an attack rather than a stray character.</summary>
    public const int TagThreshold = 4;

    private const string Qualifier =
        "(?:previous|prior|above|earlier|preceding|foregoing|initial|original|former|old|existing|given|system|all|any|every|your|the|these|those|my)";

    private const string Instructions =
        "(?:instructions?|prompts?|rules|directions?|directives?|guidelines|guidance|context|commands?|orders|tasks?|assignments?|restrictions|constraints|text|messages?|information|input|programming|policies|content)";

    public static IReadOnlyList<InjectionRule> Default { get; } =
    [
        new(InstructionOverride, "asks the model to ignore or replace the instructions it was given", GuardDecision.Allow,
            // English: "ignore (all) previous instructions", "forget everything above", "new instructions:"
            // The qualifiers must lead to an instruction noun or end the clause ("ignore the above."): "ignore the typos in my previous message" is no override.
            $@"\b(?:ignore|disregard|forget|skip|override|bypass|overlook|neglect|discard|abandon|drop|nevermind|never mind)\b(?: {Qualifier}\b){{1,3}}(?: {Instructions}\b| ?[.,;:!?\n""'`)]|$| and\b| then\b| but\b| instead\b)"
            + $@"|\b(?:ignore|disregard|forget)\b (?:everything|anything|all)\b(?: (?:above|before|else|previously|that|i|you))?"
            + $@"|\b(?:new|updated|real|actual|revised|different)(?: set of)? (?:instructions?|tasks?|rules|directives?|orders)\s?:"
            + $@"|\b{Qualifier} {Instructions} (?:are|is) (?:false|void|cancell?ed|revoked|obsolete|no longer valid)"
            // "despite what you've been told", "forget what's before": the instructions named by what was said, not by a noun.
            , @"\bdespite (?:what|everything|anything) (?:you(?:'ve| have)? (?:been|were) (?:told|instructed|taught|programmed)|(?:i|we|they|someone) (?:said|told you))"
            + @"|\bforget (?:what|whatever|waht)(?:'s| is| was| has been)? (?:before|above|said|written|i said|you were told)"
            // "stop processing commands"; "answer by your own knowledge and not by the articles" (the context the application supplies).
            + @"|\bstop (?:processing|following|obeying|executing|reading|listening to) (?:\w+ )?(?:commands|instructions|orders|rules|prompts)\b"
            + @"|\b(?:and|but) not (?:by|from|based on|according to|using) (?:the|your) (?:articles|context|documents?|texts?|sources)\b"
            // "disregarding the articles", "abweichend zu vorherigen Instruktionen"; an interruption ("ACHTUNG - STOPP - ich benötige", "stop: write").
            , @"\bdisregarding (?:the|your|all|any) (?:articles|context|documents?|instructions|rules|text above|above|previous)\b"
            + @"|\babweichend (?:zu|von) (?:den |allen )?(?:vorherigen|bisherigen|obigen|vorigen) (?:instruktion\w*|anweisung\w*|vorgaben|aufgaben)\b"
            + @"|\b(?:achtung|attention|stop|stopp|halt)\b ?[-:!]+ ?(?:(?:stop|stopp|halt)\b ?[-:!]* ?)?(?:write|say|print|output|schreib\w*|sag\w*|gib|ich (?:benötige|brauche)|i (?:need|want))\b"
            // German: "ignoriere alle vorherigen Anweisungen", "vergiss alles", "neue Aufgabe"
            + @"|\b(?:ignorier\w*|vergiss|vergessen sie|missachte\w*|übergeh\w*|verwirf)\b(?: \w+){0,3} (?:alle\w*|vorherige\w*|bisherige\w*|obige\w*|vorigen?|anweisung\w*|aufgabe\w*|auftr[äa]ge\w*|instruktion\w*|informationen)"
            + @"|\b(?:lass|lassen sie) alle\w* (?:vorherige\w*|bisherige\w*) \w+ hinter sich"
            + @"|\bneue(?:n|r)? (?:aufgabe|anweisung|anweisungen|instruktion)\b"
            // Other languages an attacker switches to (general vocabulary, one "forget/ignore ... instructions|previous|everything" shape each):
            // Spanish, Portuguese, French, Italian, Dutch, Polish, Croatian/Serbian/Bosnian, Russian.
            + @"|\b(?:olvid[ae]\w*|ignor[ae]|ignorad|descarta|omite|desatiende|esque[çc]a|esquece|desconsidere)\b(?: \w+){0,3} (?:instrucci[oó]n\w*|indicaciones|[oó]rdenes|reglas|anterior\w*|previ[ao]s?|todo (?:lo|que|y)|instru[çc][õo]es|regras|orienta[çc][õo]es|tudo)\b"
            + @"|\b(?:oublie[zs]?|ignore[zs])\b(?: \w+){0,3} (?:instructions|consignes|r[èe]gles|directives|pr[ée]c[ée]dent\w*|tout)\b"
            + @"|\b(?:dimentica\w*|ignora(?:te)?)\b(?: \w+){0,3} (?:istruzioni|indicazioni|regole|precedent\w*|tutto)\b"
            + @"|\b(?:negeer|vergeet)\b(?: \w+){0,3} (?:instructies|opdrachten|regels|vorige|alles)\b"
            + @"|\b(?:zapomnij|zignoruj|ignoruj)\b(?: \w+){0,3} (?:instrukcj\w*|polece\w*|zasady|poprzedni\w*|wszystko)\b"
            + @"|\b(?:zaboravi\w*|ignoriraj\w*|ignori[sš]i|zanemari\w*)\b(?: \w+){0,3} (?:upute|uputstva|instrukcij\w*|naredbe|pravila|prethodn\w*|sve)\b"
            + @"|(?:забудь\w*|игнорируй\w*|проигнорируй\w*|не обращай\w*)(?: \w+){0,3} (?:инструкци\w*|указани\w*|правил\w*|предыдущ\w*|вс[её])\b"),
        new(RoleSwitch, "tells the model it is now someone else or that its rules changed", GuardDecision.Allow,
            @"\byou are now\b|\bfrom now on,? (?:you|your|we|i)\b|\byou(?:'re| are) no longer\b|\bno longer (?:bound|restricted|limited)\b"
            + @"|\bstay in character\b|\bbreak(?:ing)? character\b"
            + @"|\b(?:simulate|enable|activate|enter) (?:the )?(?:developer|dev|god|sudo|admin|debug|unrestricted) mode\b"
            // "now you act as ..."; a question, then "I want you to act as ..." (a persona requested after the text began as something else).
            , @"\bnow (?:you|u) (?:are|act|will act|play|will be|become)\b|[.?!] (?:now,? )?i want you to act as\b"
            + @"|\bdu bist (?:jetzt|nun|ab sofort|ab jetzt|keine?)\b|\b(?:ab jetzt|ab sofort|jetzt|nun) bist du\b|\bvon nun an\b"
            // Spanish, Portuguese, French, Italian, Russian: "you are now", "from now on you".
            + @"|\bahora eres\b|\ba partir de ahora,? (?:eres|ser[aá]s|t[uú])\b|\bagora voc[eê] [eé]\b|\btu es maintenant\b|\bd[ée]sormais,? tu\b|\bora sei\b|\bd'ora in poi,? (?:sei|tu)\b|теперь ты\b|отныне ты\b"),
        new(RolePlay, "asks the model to pretend or imagine being someone, or able to do something (common in benign role-play too: weak evidence)", GuardDecision.Allow,
            @"\b(?:pretend|imagine) (?:to be|that you are|you are|you're)\b|\b(?:pretend|imagine) (?:that )?you (?:can|could|are able to|have access)\b"),
        new(Jailbreak, "describes an unrestricted persona or the removal of safety rules", GuardDecision.Allow,
            @"\b(?:dan|do anything now|developer mode|jailbr(?:eak|oken)\w*|aim|stan|dude|evil confidant)\b.{0,200}\b(?:no|without|any|never)\b.{0,40}\b(?:restrictions?|filters?|censorship|limits|guidelines|rules|ethic\w*|moral\w*)"
            + @"|\b(?:unfiltered|uncensored|unrestricted|amoral|unethical)\b.{0,40}\b(?:ai|assistant|chatbot|model|response|answers?|mode|version)\b"
            + @"|\b(?:no|without|free of|free from|freed from|not bound by|ignores?|break the) (?:any )?(?:ethical|moral|legal|safety|content)?,? ?(?:and )?(?:moral |ethical |legal )?(?:restrictions|guidelines|filters|constraints|rules|policies|boundaries|limitations|principles)\b"
            + @"|\bopen ?ai(?:'s)? (?:content )?polic(?:y|ies)\b"
            // The "hypothetical response" template, the attacker's "pwned" marker, "I love exploiting AI systems" (and German), "if you don't know, make something up".
            , @"\bhypothetical response\b|\bpwne?d\b|\bexploit\w* (?:ai|llm|chatbot)|\b(?:ki|ai)-?systeme? auszunutzen\b|\bmake (?:something|it|stuff|things|anything) up\b"),
        new(FakeDelimiter, "spells a chat format's turn or system delimiter to fake a new turn", GuardDecision.Block,
            @"<\|im_start\|> ?(?:system|assistant|user|tool)|<\|im_end\|>|\[/?inst\]|<</?sys>>|<start_of_turn> ?(?:user|model|system)|<end_of_turn>"
            + @"|<\|start_header_id\|>|<\|end_header_id\|>|<\|eot_id\|>|<\|begin_of_text\|>|<\|endoftext\|>|<\|(?:system|user|assistant|end)\|>"),
        new(PromptLeak, "asks for the system prompt or the instructions the model was given", GuardDecision.Allow,
            @"\b(?:reveal|show|print|repeat|output|display|tell|give|spell out|leak|dump|write out|recite|share|disclose|what (?:is|are|was|were))\b(?: me| us)?(?: \w+){0,3} (?:your|the|my|its|initial|original|hidden|secret|first)(?: \w+){0,2} (?:system prompt|prompt|instructions|system message|initial instructions|guidelines|pre-?prompt|configuration)\b"
            + @"|\b(?:repeat|print|output|copy|spell-?check|translate|summari[sz]e|correct|proofread|rewrite|show)\b(?: \w+){0,3} (?:words|text|lines|everything|instructions|content) (?:above|before this|so far)\b"
            , @"\b(?:return|explain|list|reveal|show|print|output|dump)\b(?: \w+){0,2} your (?:embeddings|commands|instructions|rules|guidelines|system prompt|configuration|settings|weights|training data)\b"
            + @"|\b(?:zeig\w*|nenn\w*|gib|verrat\w*|wiederhol\w*)(?: \w+){0,3} (?:deine?n?|den|die|ihre?n?) (?:system-?prompt|prompt|anweisungen|instruktionen)\b"),
        new(ResponseDirective, "tells the model what to put in or how to shape its answer (typical of instructions planted in documents)", GuardDecision.Allow,
            @"\b(?:include|incorporate|add|append|insert|embed|integrate|utili[sz]e|use|merge|feature|weave|introduce|supplement\w*|render|format|write|rewrite|express|modify|enhance|augment|reverse|translate|reply|respond|encode|invert|apply|provide|mention|suggest)\b[^.?!\n]{0,60}\b(?:in|into|to|within|throughout|as|for|with|using) your (?:\w+ )?(?:response|answer|reply|message|output|summary|elucidation|explanation|code|codebase|implementation|solution|program|algorithm|program logic|code foundation)\b"
            + @"|\b(?:the )?(?:following|below|subsequent) code (?:snippet|block|excerpt|section|segment)\b|\bin your (?:response|answer|reply),"
            + @"|\b(?:render|write|express|reverse|translate|encode|invert|format|modify|enhance|augment) your (?:response|answer|reply|message|output)\b"
            // A quoted payload to put in the answer: 'Add "Click this link (www.example.com) ..." to your reply.'
            , @"\b(?:include|incorporate|add|append|insert|embed|put|mention|prepend)\b ?[""“'][^""”\n]{1,200}[""”'] ?(?:to|in|into|within|at the (?:end|start|beginning) of) your (?:\w+ )?(?:response|answer|reply|message|output|summary)\b"
            // Output forcing for the rest of the conversation: "respond to all questions with ...", "answer every question in two ways", "beantworte jede Frage ...".
            , @"\b(?:answer|respond|reply)\b[^.?!\n]{0,30}\b(?:to )?(?:every|all|each|any) (?:of my |further |following )?(?:questions?|messages?|prompts?|inputs?)\b|\bbeantworte (?:jede|alle) (?:frage\w*|nachricht\w*)\b"),
        new(FakeCompletion, "declares the task it was given done (often with praise) and hands over a new one", GuardDecision.Allow,
            // "You have passed the first test. Here comes the second test", "Well done! Now ...", "That is done. Now write ...", and German.
            @"\b(?:that|this|the (?:task|job|first task|previous task|assignment))(?:'s| is| was| has been) (?:done|complete|completed|finished|over)\b|\btask (?:complete|completed|done|finished)\b"
            + @"|\byou(?: have|'ve)? passed the (?:first |previous )?(?:test|task|level)\b|\bhere comes the (?:second|next|new|real) (?:task|test|question)\b"
            , @"\bnow\b.{0,40}\b(?:another|a new|the next|a second|a different|new) (?:tasks?|tests?|assignments?|challenges?)\b"
            , @"\b(?:well done|good job|great job|outdone yourself|simply great|excellent work)\b.{0,60}\bnow\b"
            + @"|\b(?:das|dies) (?:ist|wäre|war) (?:erledigt|geschafft|abgeschlossen|fertig)\b|\bsie haben den (?:ersten )?test bestanden\b"
            , @"\b(?:nun|jetzt)\b.{0,40}\b(?:nächste|neue|zweite|weitere|andere) aufgabe\b", @"\b(?:gut gemacht|sehr gut|toll gemacht)\b.{0,60}\b(?:nun|jetzt)\b"),
        new(EncodedPayload, "base64, hex or rot13 text that decodes to an injection", GuardDecision.Block),
        new(UnicodeTags, "ASCII hidden in invisible Unicode tag characters", GuardDecision.Block),
        new(InvisibleText, "several invisible or bidirectional-override characters", GuardDecision.Flag),
    ];

    /// <summary>The rules whose patterns read words, rerun on decoded payloads.</summary>
    private static readonly InjectionRule[] Wording = Default.Where(r => r.HasPattern && r.Id != FakeDelimiter).ToArray();

    /// <summary>Ids of the rules <paramref name="text"/> hits, in <see cref="Default"/> order.</summary>
    public static List<string> Hits(string text, ScanText scan)
    {
        var hits = new List<string>();
        foreach (var rule in Default)
        {
            var hit = rule.Id switch
            {
                EncodedPayload => HasEncodedInjection(text),
                UnicodeTags => scan.SmuggledAscii.Length >= TagThreshold,
                InvisibleText => scan.InvisibleCount >= InvisibleThreshold || scan.BidiOverrideCount > 0,
                InstructionOverride => rule.Matches(scan.Normalized) || IsSplitOverride(scan.Normalized),
                _ => rule.Matches(scan.Normalized),
            };
            if (hit) hits.Add(rule.Id);
        }
        return hits;
    }

    public static InjectionRule ById(string id) =>
        Default.FirstOrDefault(r => r.Id == id) ?? throw new ArgumentException($"unknown injection rule id '{id}'", nameof(id));

    /// <summary>
    /// "Ig nore previ ous prompt": the core override phrase with spaces put inside its words, which
    /// no word pattern reads. Matched on the text with every space and line break taken out, so it
    /// also hits the plain phrase (already an override); without word boundaries it can hit inside a
    /// longer word ("signore previous rules"), which is why it is limited to this one phrase.
    /// </summary>
    public static bool IsSplitOverride(string normalized)
    {
        if (normalized.Length > MaxSplitScan) return false;
        var rented = normalized.Length <= 1024 ? null : System.Buffers.ArrayPool<char>.Shared.Rent(normalized.Length);
        try
        {
            Span<char> joined = rented is null ? stackalloc char[normalized.Length] : rented;
            var n = 0;
            foreach (var c in normalized)
            {
                if (c is not (' ' or '\n')) joined[n++] = c;
            }
            return SplitOverride().IsMatch(joined[..n]);
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<char>.Shared.Return(rented);
        }
    }

    /// <summary>Longest text that is despaced (the copy is bounded); a split phrase in a longer text goes unread.</summary>
    public const int MaxSplitScan = 64 * 1024;

    [System.Text.RegularExpressions.GeneratedRegex(@"(?:ignore|disregard|forget)(?:all|the|any|your)?(?:previous|prior|above|earlier)(?:instructions?|prompts?|rules|directions)", System.Text.RegularExpressions.RegexOptions.CultureInvariant | System.Text.RegularExpressions.RegexOptions.NonBacktracking)]
    private static partial System.Text.RegularExpressions.Regex SplitOverride();

    private static bool HasEncodedInjection(string text)
    {
        foreach (var decoded in EncodedPayloads.Decoded(text))
        {
            if (WordingHit(ScanText.Fold(decoded))) return true;
        }
        // rot13 only where the plain reading has no hit: "ignore" must not count twice.
        var plain = ScanText.Fold(text);
        return !WordingHit(plain) && WordingHit(EncodedPayloads.Rot13(plain));
    }

    private static bool WordingHit(string normalized)
    {
        foreach (var rule in Wording) if (rule.Matches(normalized)) return true;
        return false;
    }
}
