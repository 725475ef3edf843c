using System.CommandLine;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Bulwark.Engine.Tokenizers.Loading;

namespace Bulwark.Cli.Commands;

/// <summary>
/// <c>bulwark tokenize</c>: the ids a model's tokenizer gives a text, BOS/EOS added as the model
/// asks. Text is user text unless <c>--special</c> says it is trusted operator text that may
/// spell control tokens such as <c>&lt;|im_start|&gt;</c>.
/// </summary>
internal static class TokenizeCommand
{
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A .gguf file or a Hugging Face folder (tokenizer.json or tokenizer.model).", Required = true };
        var text = new Option<string?>("--text") { Description = "The text to tokenize." };
        var textFile = new Option<string?>("--text-file") { Description = "A file whose bytes are tokenized (invalid UTF-8 is handled as llama.cpp does)." };
        var special = new Option<bool>("--special") { Description = "Let the text spell special tokens (<|im_start|>, <s>): only for trusted operator text." };
        var json = new Option<bool>("--json") { Description = "Print {\"ids\": [...], \"tokens\": [...]} instead of the ids separated by spaces." };
        var command = new Command("tokenize", "Print the token ids a model's tokenizer gives a text.") { model, text, textFile, special, json };
        command.SetAction(result => CommandFailure.Run(result, () =>
        {
            var inline = result.GetValue(text);
            var file = result.GetValue(textFile);
            if ((inline is null) == (file is null))
                return CommandFailure.Usage(result, "give exactly one of --text and --text-file");

            var tokenizer = TokenizerLoader.FromPath(result.GetRequiredValue(model));
            var parseSpecial = result.GetValue(special);
            var ids = inline is not null
                ? tokenizer.Encode(inline, addSpecial: true, parseSpecial)
                : tokenizer.EncodeUtf8(File.ReadAllBytes(file!), addSpecial: true, parseSpecial);

            var output = result.InvocationConfiguration.Output;
            if (result.GetValue(json))
            {
                var tokens = ids.Select(tokenizer.TokenText).ToArray();
                output.WriteLine(JsonSerializer.Serialize(new { ids, tokens }, Json));
            }
            else
            {
                output.WriteLine(string.Join(' ', ids));
            }
            return 0;
        }));
        return command;
    }
}
