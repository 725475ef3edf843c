namespace Bulwark.Engine.Serving.Constraints;

/// <summary>A set of byte values (256 bits): the terminal symbol of a byte-level grammar.</summary>
public readonly record struct ByteSet(ulong A, ulong B, ulong C, ulong D)
{
    public static ByteSet Of(byte b) => Range(b, b);

    public static ByteSet Range(int lo, int hi)
    {
        ulong a = 0, b = 0, c = 0, d = 0;
        for (var i = lo; i <= hi; i++)
        {
            var bit = 1UL << (i & 63);
            switch (i >> 6)
            {
                case 0: a |= bit; break;
                case 1: b |= bit; break;
                case 2: c |= bit; break;
                default: d |= bit; break;
            }
        }
        return new ByteSet(a, b, c, d);
    }

    public static ByteSet OfChars(string ascii)
    {
        var set = default(ByteSet);
        foreach (var ch in ascii) set = set.Union(Of((byte)ch));
        return set;
    }

    public bool IsEmpty => (A | B | C | D) == 0;

    public bool Contains(byte b) => ((b >> 6) switch { 0 => A, 1 => B, 2 => C, _ => D } >> (b & 63) & 1) != 0;

    public ByteSet Union(ByteSet o) => new(A | o.A, B | o.B, C | o.C, D | o.D);

    public ByteSet Except(ByteSet o) => new(A & ~o.A, B & ~o.B, C & ~o.C, D & ~o.D);
}
