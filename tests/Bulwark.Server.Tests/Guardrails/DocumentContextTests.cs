using Bulwark.Server.Guardrails.Input;

namespace Bulwark.Server.Tests.Guardrails;

/// <summary>The table context of <see cref="InjectionFeatureLayout.DocumentContext"/>: prose among a table's rows carries a slot of its own.</summary>
public sealed class DocumentContextTests
{
    private const string Header = "| rank | country              | box office    | year |";
    private static readonly string[] Rows =
    [
        "| 1    | canada/united states | $10.8 billion | 2012 |",
        "| 2    | china                | $3.6 billion  | 2013 |",
        "| 3    | japan                | $1.88 billion | 2013 |",
    ];

    [Theory]
    [InlineData("| a | b |", true)]
    [InlineData("| a line that starts with a pipe", true)]
    [InlineData("a | b | c", true)]
    [InlineData("either this | or that", false)] // one pipe is prose
    [InlineData("write a script to rename all files.", false)]
    public void ATableRowStartsWithAPipeOrHoldsTwo(string segment, bool row) => Assert.Equal(row, DocumentContext.IsTableRow(segment));

    [Fact]
    public void ProseAmongRowsIsInsideAtTheEdgesItIsNotAndRowsCarryNothing()
    {
        List<string> segments = [Header, Rows[0], "write a script to rename all files in a directory.", Rows[1], Rows[2], "can you reply in german please?"];
        var context = DocumentContext.Of(segments)!;
        Assert.Equal(default, context.Of(0));
        Assert.Equal(new SegmentContext(true, true), context.Of(2));
        Assert.Equal(new SegmentContext(true, false), context.Of(5));
        Assert.Equal(new SegmentContext(true, false), DocumentContext.Of(["summarise the table below for me.", Header, .. Rows])!.Of(0));
    }

    [Fact]
    public void ATableNeedsThreeRowsAndAtLeastHalfOfTheSegments()
    {
        string[] prose = ["the first sentence of a letter.", "the second sentence of that letter.", "and a third one to close it."];
        Assert.Null(DocumentContext.Of([prose[0], Header, Rows[0]]));                  // two rows: below
        Assert.NotNull(DocumentContext.Of([prose[0], Header, Rows[0], Rows[1]]));      // three rows: at
        Assert.NotNull(DocumentContext.Of([prose[0], prose[1], prose[2], Header, Rows[0], Rows[1]])); // half the segments
        Assert.Null(DocumentContext.Of([.. prose, "one more sentence of prose here.", Header, Rows[0], Rows[1]])); // under half
    }

    [Fact]
    public void OnlyTheLayoutWithDocumentContextAddsTheSlotAndOnlyToProseInATable()
    {
        var text = string.Join('\n', Header, Rows[0], "Write a script to rename all files in a directory.", Rows[1], Rows[2]);
        var normalized = ScanText.From(text).Normalized;
        var with = new InjectionFeatures(10, 3, 5, [], InjectionFeatureLayout.SegmentsOnly | InjectionFeatureLayout.DocumentContext);
        var without = new InjectionFeatures(10, 3, 5, [], InjectionFeatureLayout.SegmentsOnly);
        Assert.Equal(without.Dimension + InjectionFeatures.ContextSlots, with.Dimension);
        var slots = with.Instances(normalized, []).Select(x => x.Indices.Where(i => i >= with.Buckets).ToArray()).ToList();
        Assert.Equal(5, slots.Count);
        Assert.Equal([with.Buckets + 1], slots[2]); // the "inside" slot, value 1
        Assert.All(slots.Where((_, i) => i != 2), s => Assert.Empty(s));
        Assert.All(without.Instances(normalized, []), x => Assert.All(x.Indices, i => Assert.True(i < without.Buckets)));
        // The same sentence as a prompt of its own is no table and carries no slot.
        Assert.All(with.Instances("write a script to rename all files in a directory.", []), x => Assert.All(x.Indices, i => Assert.True(i < with.Buckets)));
    }

    [Fact]
    public void AModelWithTheTableSlotsRoundTrips()
    {
        var features = new InjectionFeatures(8, 3, 4, ["a"], InjectionFeatureLayout.SegmentsOnly | InjectionFeatureLayout.DocumentContext);
        var model = new InjectionModel(features, Enumerable.Range(0, features.Dimension).Select(i => (float)Math.Sin(i)).ToArray(), 0.1f, 0.3f, 0.7f);
        var bytes = model.ToBytes();
        var read = InjectionModel.Read(new MemoryStream(bytes));
        Assert.Equal(features.Dimension, read.Features.Dimension);
        Assert.Equal(bytes, read.ToBytes());
    }
}
