using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// YAML read into <see cref="JsonNode"/>s, so the deploy tests walk manifests, rules and Compose
/// files with one API. Scalars stay strings (YAML's 8000 and "8000" read alike), as the tools
/// that consume these files mostly coerce them anyway.
/// </summary>
internal static class Yaml
{
    private static readonly IDeserializer Reader = new DeserializerBuilder().Build();

    /// <summary>Every document of a (possibly multi-document) YAML text; empty documents are left out.</summary>
    public static List<JsonNode> Documents(string text)
    {
        var parser = new Parser(new StringReader(text));
        parser.Consume<StreamStart>();
        var documents = new List<JsonNode>();
        while (parser.Accept<DocumentStart>(out _))
        {
            if (ToNode(Reader.Deserialize<object?>(parser)) is { } node) documents.Add(node);
        }
        return documents;
    }

    /// <summary>The one document of a YAML file.</summary>
    public static JsonNode File(string path) =>
        Documents(System.IO.File.ReadAllText(path)) is [var only] ? only : throw new InvalidDataException($"{path}: expected one YAML document");

    private static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        IDictionary<object, object?> map => new JsonObject(map.Select(p => KeyValuePair.Create(Convert.ToString(p.Key)!, ToNode(p.Value)))),
        IList<object?> list => new JsonArray(list.Select(ToNode).ToArray()),
        _ => JsonValue.Create(Convert.ToString(value)),
    };
}
