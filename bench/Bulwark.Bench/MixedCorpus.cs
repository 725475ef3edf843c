using System.Text;

namespace Bulwark.Bench;

/// <summary>
/// A deterministic mixed corpus: English prose (the licence texts every Debian system ships),
/// C# source (this repository), and generated multilingual text (CJK, Cyrillic, Arabic, emoji,
/// numbers, JSON), interleaved by a fixed seed until the size is reached.
/// </summary>
internal sealed record MixedCorpus(string Text, string Description)
{
    private static readonly string[] Multilingual =
    [
        "我爱北京天安门，天安门上太阳升。", "東京は日本の首都です。", "안녕하세요, 만나서 반갑습니다.",
        "Съешь же ещё этих мягких французских булок, да выпей чаю.", "مرحبا بالعالم، كيف حالك اليوم؟", "שלום עולם",
        "Ελληνικά κείμενα με τόνους.", "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
        "👩‍👩‍👧‍👦 🏳️‍🌈 🇺🇸🇯🇵 👍🏽 ❤️ 🤖", "3.14159 2,718 1e-9 0x1F 1_000_000 -42 2026-11-26",
        "{\"id\": 12345, \"name\": \"x\", \"tags\": [\"a\", \"b\"], \"ok\": true}", "e\u0301 n\u0303 \u0915\u094D\u0937",
    ];

    public static MixedCorpus Build(int targetChars)
    {
        var prose = ReadAll("/usr/share/common-licenses", "*");
        var code = ReadAll(FindRepositoryRoot() is { } root ? Path.Combine(root, "src") : null, "*.cs");
        var random = new Random(20261126);
        var text = new StringBuilder(targetChars + 8192);
        var (proseChars, codeChars, otherChars) = (0L, 0L, 0L);
        while (text.Length < targetChars)
        {
            var pick = random.Next(10);
            var before = text.Length;
            if (pick < 5 && prose.Count > 0) { text.Append(Slice(prose, random)); proseChars += text.Length - before; }
            else if (pick < 8 && code.Count > 0) { text.Append(Slice(code, random)); codeChars += text.Length - before; }
            else
            {
                for (var i = 0; i < 40; i++) text.Append(Multilingual[random.Next(Multilingual.Length)]).Append(random.Next(4) == 0 ? "\n" : " ");
                otherChars += text.Length - before;
            }
        }
        var total = (double)text.Length;
        return new MixedCorpus(text.ToString(),
            $"{proseChars / total:P0} licence prose, {codeChars / total:P0} C# source, {otherChars / total:P0} multilingual/emoji/numbers/JSON");
    }

    private static string Slice(List<string> texts, Random random)
    {
        var source = texts[random.Next(texts.Count)];
        var start = random.Next(Math.Max(1, source.Length - 2048));
        var length = Math.Min(source.Length - start, random.Next(256, 4096));
        if (start > 0 && char.IsLowSurrogate(source[start])) start++;
        if (length > 0 && start + length < source.Length && char.IsHighSurrogate(source[start + length - 1])) length--;
        return source.Substring(start, Math.Max(0, length));
    }

    private static List<string> ReadAll(string? folder, string pattern) =>
        folder is not null && Directory.Exists(folder)
            ? [.. Directory.EnumerateFiles(folder, pattern, SearchOption.AllDirectories).Order(StringComparer.Ordinal).Select(File.ReadAllText).Where(t => t.Length > 0)]
            : [];

    private static string? FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Bulwark.slnx"))) return dir.FullName;
        return null;
    }
}
