namespace Bulwark.Engine.Formats;

/// <summary>
/// A model file (or its config) is malformed, hostile or unsupported. The message names the
/// file, the field and the offending value so an operator can act on it without a debugger.
/// </summary>
public sealed class ModelFormatException : Exception
{
    public ModelFormatException(string file, string field, string problem)
        : base($"{Path.GetFileName(file)}: {field}: {problem}")
    {
        FilePath = file;
        Field = field;
    }

    public ModelFormatException(string file, string field, string problem, Exception inner)
        : base($"{Path.GetFileName(file)}: {field}: {problem}", inner)
    {
        FilePath = file;
        Field = field;
    }

    /// <summary>The file that was being read.</summary>
    public string FilePath { get; }

    /// <summary>The field (header entry, metadata key, tensor name) that was wrong.</summary>
    public string Field { get; }
}
