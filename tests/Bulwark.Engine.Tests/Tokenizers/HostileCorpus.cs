using System.Globalization;
using System.Text;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// Text built to break tokenizers: every Unicode category, emoji sequences, CJK, RTL,
/// combining marks, whitespace runs, digit runs, code, contractions, spelled special tokens,
/// and (as bytes) invalid UTF-8. Deterministic: the random parts use fixed seeds.
/// </summary>
public static class HostileCorpus
{
    public static readonly string[] SpecialSpellings =
    [
        "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
        "<s>[INST] hi [/INST]</s>",
        "<|endoftext|>",
        "a<|endoftext|>b<|endoftext|><|endoftext|>",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n",
        "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
        "<|endofprompt|> <|endoftext",
        "<<s>> </s/> <unk> <0x41> <|im_start|",
    ];

    public static IReadOnlyList<string> Texts { get; } = Build();

    private static List<string> Build()
    {
        var texts = new List<string>
        {
            "", " ", "  ", "a", "Hello, world!", " Hello", "Hello ", "hello   world", "Hello\nworld\n",
            "I'm sure you're right, they'LL say IT'S fine, 'S 'd'", "don’t won’t", "the cat's hat's",
            "👩‍👩‍👧‍👦 family 🏳️‍🌈 flag 🇺🇸🇯🇵 👍🏽 ❤️ 🫠", "🤖🤖🤖🤖", "😀a😀 😀",
            "我爱北京天安门，天安门上太阳升。", "こんにちは世界、カタカナとひらがな。", "안녕하세요 세계", "中文English混合123",
            "مرحبا بالعالم ١٢٣", "שלום עולם", "abc \u200Fعربي\u200E def", "\u202Eevil\u202C",
            "e\u0301 e\u0301\u0301 Z\u0351\u0352\u0353\u0354 ñ n\u0303 \u0915\u094D\u0937", "Ǆǅǆ ǈ ß ẞ ﬁ ﬀ İı",
            "ÉcoleNormale éÉ ÀÉÎÕÜàéîõü HelloWorld HTTPServer iPhone", "Ωμέγα ΣΊΣΥΦΟΣ ςσΣ",
            "\t", "\t\t\t", "\n", "\n\n\n", "\r\n", "\r\n\r\n", " \n \n ", "a\tb\t\tc", "   \t\n  x", "x   ", "x \n", "\u00A0\u2003\u3000 nbsp",
            "\v\f\u0085\u2028\u2029", "\0\u0001\u001F\u007F", "tab\there", "line\r\nbreak\rold mac\n",
            "```csharp\nstatic int Main(string[] args)\n{\n    return args.Length > 0 ? 1 : 0; // done\n}\n```",
            "def f(x):\n\tif x <= 0:\n\t\treturn [i**2 for i in range(10)]\n    # mixed   indentation\n",
            "SELECT * FROM t WHERE a='x' AND b<>2;--", "<div class=\"a\">&amp;&lt;</div>", "https://example.com/a?b=c&d=%20#x",
            "{\"key\": [1, 2.5, -3e10, null, true]}", "C:\\Windows\\System32", "a/b/c//d", "$$$ ### !!! ??? ... ---",
            "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890",
            "3.14159 2,718 1e-9 0x1F 1_000_000 -42", "１２３４５ ①②③ Ⅻ ½ ¾ ²³", "٠١٢٣٤٥٦٧٨٩ ०१२३", "1st 2nd 3rd 100th",
            new string('1', 41), string.Join(" ", Enumerable.Range(0, 30).Select(i => i * i * i)),
            "\uFFFD\uFFFE\uFEFF BOM", "\U0001D400\U0001D401 math bold", "\U000E0041 tag", "\uE000\U000F0000 private use",
            "\uD800 lone high", "lone low \uDC00", "\uDC00\uD800 reversed pair",
        };
        texts.AddRange(SpecialSpellings);
        for (var n = 1; n <= 33; n += 4)
        {
            texts.Add(new string(' ', n) + "word" + new string(' ', n));
            texts.Add("a" + new string('\n', n) + "b");
            texts.Add(new string('9', n));
        }
        // Long runs: one pre-token of 20,000 symbols, a whitespace run, a run of 4-byte characters, digits.
        texts.Add(new string('a', 20_000));
        texts.Add(new string(' ', 20_000) + "x");
        texts.Add(string.Concat(Enumerable.Repeat("\U0001F600", 5_000)));
        texts.Add(new string('7', 20_000));
        texts.Add(string.Concat(Enumerable.Repeat("ab \n", 5_000)));
        texts.Add(CategorySample());
        texts.AddRange(RandomMixes(seed: 7, count: 150));
        return texts;
    }

    /// <summary>Three characters of every Unicode general category (surrogates apart), separated by letters and spaces.</summary>
    private static string CategorySample()
    {
        var perCategory = new Dictionary<UnicodeCategory, int>();
        var builder = new StringBuilder();
        for (var cp = 0; cp <= 0x10FFFF; cp += cp < 0x3000 ? 1 : 97)
        {
            if (cp is >= 0xD800 and <= 0xDFFF) continue;
            var category = CharUnicodeInfo.GetUnicodeCategory(cp);
            if (category == UnicodeCategory.OtherNotAssigned) continue;
            perCategory.TryGetValue(category, out var seen);
            if (seen >= 3) continue;
            perCategory[category] = seen + 1;
            builder.Append(char.ConvertFromUtf32(cp)).Append(seen == 1 ? " x" : "y");
        }
        return builder.ToString();
    }

    private static IEnumerable<string> RandomMixes(int seed, int count)
    {
        string[] pool =
        [
            " ", "  ", "\t", "\n", "\r\n", "a", "Z", "é", "É", "ß", "the", " the", "ing", "'s", "'LL", "7", "42", "1234",
            "我", "こ", "ا", "ש", "́", "🤖", "👩‍👧", "🇫🇷", "!", "?", ".", ",", "(", "]", "{", "/", "\\", "\"", "<", "|", ">",
            "<|endoftext|>", "<s>", "</s>", "\u00A0", "\u3000", "١", "½", "\u200D", "\uFE0F", "\u0000", "\u007F", "x̃",
        ];
        var random = new Random(seed);
        for (var i = 0; i < count; i++)
        {
            var builder = new StringBuilder();
            var parts = random.Next(1, 40);
            for (var p = 0; p < parts; p++) builder.Append(pool[random.Next(pool.Length)]);
            yield return builder.ToString();
        }
    }

    /// <summary>Byte strings that are not valid UTF-8, plus random bytes (lead bytes F4..F7 left out: llama.cpp aborts on code points above U+10FFFF).</summary>
    public static IReadOnlyList<byte[]> InvalidUtf8 { get; } = BuildInvalid();

    private static List<byte[]> BuildInvalid()
    {
        List<byte[]> list =
        [
            [0xFF], [0xFE, 0xFF], [0x80], [0xBF, 0x80, 0x41], [0xC3], [0xC3, 0x28], [0xE2, 0x82], [0xE2, 0x82, 0x41],
            [0xF0, 0x9F, 0x98], [0xF0, 0x9F, 0x98, 0x20, 0x61], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80],
            [0xED, 0xB0, 0x80, 0x41], [0x61, 0x80, 0x62, 0xFF, 0x63], [0xF8, 0x88, 0x80, 0x80, 0x80], [0x20, 0xC3, 0x20],
            [.. "<|endoftext|>"u8, 0xFF], [0x3C, 0x73, 0xFF, 0x3E],
        ];
        var random = new Random(11);
        for (var i = 0; i < 60; i++)
        {
            var bytes = new byte[random.Next(1, 48)];
            for (var k = 0; k < bytes.Length; k++)
            {
                byte b;
                do b = (byte)(random.Next(3) == 0 ? random.Next(0x80) : random.Next(256));
                while (b is >= 0xF4 and <= 0xF7);
                bytes[k] = b;
            }
            list.Add(bytes);
        }
        return list;
    }
}
